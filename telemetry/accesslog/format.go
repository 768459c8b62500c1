// Package accesslog writes Envoy's access logs: an HttpConnectionManager's
// or a tcp_proxy's access_log entries with envoy.access_loggers.file and
// envoy.access_loggers.stdout, in text formats with Envoy's command
// operators or JSON formats, Istio's default format among them.
//
// A format is compiled once per config (Compile); a line is formatted into
// a pooled buffer on the stream's goroutine and handed to its Sink, whose
// own goroutine writes it: a slow disk never blocks a request (a full
// queue drops the line and counts it in
// waypoint_access_log_dropped_total).
//
// The formatter is written here rather than taken from a library: Envoy's
// substitution format language has no Go implementation.
package accesslog

import (
	"encoding/json"
	"fmt"
	"github.com/gowaypoint/waypoint/internal/cmdop"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// EnvoyFormat is Envoy's default text format, used when an access log
// names none.
const EnvoyFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// IstioFormat is Istio's default text format (meshConfig.accessLogFormat
// unset, accessLogEncoding TEXT).
const IstioFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ` +
	`"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% ` +
	`%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// PeerInfo is what %FILTER_STATE(downstream_peer_obj:FIELD:x)% and
// upstream_peer_obj read: a peer's workload metadata by Istio's field
// names (app, version, service, revision, cluster, namespace, workload,
// name, type).
type PeerInfo func(field string) string

// Record is one finished request or TCP connection, as a format reads it.
// The caller fills what it knows; zero values print as "-" (null in JSON).
type Record struct {
	Start    time.Time
	Duration time.Duration
	// Request and Response are nil for a TCP connection (and Response for
	// a request that got none).
	Request  *l7.Request
	Response *l7.Response
	// Stream is the HTTP stream (flags, route, upstream, details); nil
	// for a TCP connection, whose fields below are then used.
	Stream      *filters.Stream
	Downstream  *filters.Downstream
	Code        int
	Flags       filters.Flags
	BytesIn     int64 // %BYTES_RECEIVED%: from the downstream
	BytesOut    int64 // %BYTES_SENT%: to the downstream
	Cluster     string
	Host        netip.AddrPort
	Failure     string
	RouteName   string
	Details     string
	Termination string
	// Source and Destination feed FILTER_STATE's peer objects; may be nil.
	Source, Destination PeerInfo
}

type op uint8

const (
	opLiteral op = iota
	opStartTime
	opReq
	opResp
	opTrailer
	opResponseCode
	opResponseFlags
	opResponseFlagsLong
	opResponseCodeDetails
	opTermination
	opDuration
	opBytesReceived
	opBytesSent
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocalAddress
	opUpstreamFailure
	opRouteName
	opPeerURISAN
	opLocalURISAN
	opRemoteAddr
	opRemoteAddrNoPort
	opDirectRemoteAddr
	opDirectRemoteAddrNoPort
	opLocalAddr
	opLocalAddrNoPort
	opServerName
	opProtocol
	opHostname
	opFilterState
	opUpstreamRequestAttempts
)

var commands = map[string]op{
	"START_TIME":                             opStartTime,
	"REQ":                                    opReq,
	"RESP":                                   opResp,
	"TRAILER":                                opTrailer,
	"RESPONSE_CODE":                          opResponseCode,
	"RESPONSE_FLAGS":                         opResponseFlags,
	"RESPONSE_FLAGS_LONG":                    opResponseFlagsLong,
	"RESPONSE_CODE_DETAILS":                  opResponseCodeDetails,
	"CONNECTION_TERMINATION_DETAILS":         opTermination,
	"DURATION":                               opDuration,
	"BYTES_RECEIVED":                         opBytesReceived,
	"BYTES_SENT":                             opBytesSent,
	"UPSTREAM_HOST":                          opUpstreamHost,
	"UPSTREAM_CLUSTER":                       opUpstreamCluster,
	"UPSTREAM_CLUSTER_RAW":                   opUpstreamCluster,
	"UPSTREAM_LOCAL_ADDRESS":                 opUpstreamLocalAddress,
	"UPSTREAM_TRANSPORT_FAILURE_REASON":      opUpstreamFailure,
	"ROUTE_NAME":                             opRouteName,
	"DOWNSTREAM_PEER_URI_SAN":                opPeerURISAN,
	"DOWNSTREAM_LOCAL_URI_SAN":               opLocalURISAN,
	"DOWNSTREAM_REMOTE_ADDRESS":              opRemoteAddr,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": opRemoteAddrNoPort,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":       opDirectRemoteAddr,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": opDirectRemoteAddrNoPort,
	"DOWNSTREAM_LOCAL_ADDRESS":                      opLocalAddr,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         opLocalAddrNoPort,
	"REQUESTED_SERVER_NAME":                         opServerName,
	"PROTOCOL":                                      opProtocol,
	"HOSTNAME":                                      opHostname,
	"FILTER_STATE":                                  opFilterState,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                opUpstreamRequestAttempts,
}

// numeric operators print as JSON numbers in a JSON format.
var numeric = map[op]bool{opResponseCode: true, opDuration: true, opBytesReceived: true, opBytesSent: true, opUpstreamRequestAttempts: true}

type part struct {
	op      op
	literal string
	// name and alt are REQ/RESP/TRAILER's header and "?alternative",
	// lower-case; for FILTER_STATE, name is the key and alt the field.
	name, alt string
	maxLen    int
}

// Format is a compiled format: text, or JSON (keys in order, each a text
// format of its own). Read-only; safe for concurrent use.
type Format struct {
	parts     []part // text
	json      []jsonField
	omitEmpty bool
	hostname  string
}

type jsonField struct {
	key   []byte // quoted, with the colon
	parts []part
	typed bool // a lone numeric operator: a JSON number
}

// Compile compiles a text format with Envoy's command operators.
func Compile(text string, omitEmpty bool) (*Format, error) {
	ps, err := parse(text)
	if err != nil {
		return nil, err
	}
	return &Format{parts: ps, omitEmpty: omitEmpty, hostname: hostname()}, nil
}

// CompileJSON compiles a JSON format: each value a text format (strings
// only; nested objects are refused), keys written in sorted order as Envoy
// writes them.
func CompileJSON(fields map[string]string, omitEmpty bool) (*Format, error) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := &Format{omitEmpty: omitEmpty, hostname: hostname()}
	for _, k := range keys {
		ps, err := parse(fields[k])
		if err != nil {
			return nil, fmt.Errorf("json_format[%q]: %w", k, err)
		}
		kb, _ := json.Marshal(k)
		jf := jsonField{key: append(kb, ':'), parts: ps}
		jf.typed = len(ps) == 1 && numeric[ps[0].op]
		f.json = append(f.json, jf)
	}
	return f, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func parse(s string) ([]part, error) {
	return cmdop.Split(s, func(text string) part { return part{op: opLiteral, literal: text} }, parseCommand)
}

// parseCommand gives a scanned operator its meaning in an access log line.
func parseCommand(sc cmdop.Operator) (part, error) {
	cmd, args, hasArgs, maxLen := sc.Command, sc.Args, sc.HasArgs, sc.MaxLen
	o, ok := commands[cmd]
	if !ok {
		return part{}, fmt.Errorf("unsupported command operator %%%s%%", cmd)
	}
	p := part{op: o, maxLen: maxLen}
	switch o {
	case opReq, opResp, opTrailer:
		if !hasArgs || args == "" {
			return part{}, fmt.Errorf("%%%s needs a header name: %%%s(name)%%", cmd, cmd)
		}
		name, alt, _ := strings.Cut(args, "?")
		p.name, p.alt = strings.ToLower(name), strings.ToLower(alt)
	case opFilterState:
		// KEY, KEY:PLAIN, KEY:TYPED, or KEY:FIELD:NAME for the peer objects.
		key, rest, _ := strings.Cut(args, ":")
		if key == "" {
			return part{}, fmt.Errorf("%%FILTER_STATE needs a key")
		}
		p.name = key
		switch {
		case rest == "" || rest == "PLAIN" || rest == "TYPED":
		case strings.HasPrefix(rest, "FIELD:"):
			p.alt = strings.TrimPrefix(rest, "FIELD:")
		default:
			return part{}, fmt.Errorf("%%FILTER_STATE(%s): unsupported serialization %q", args, rest)
		}
	case opStartTime:
		if hasArgs && args != "" {
			return part{}, fmt.Errorf("%%START_TIME(%s)%%: custom time formats are not supported", args)
		}
	default:
		if hasArgs {
			return part{}, fmt.Errorf("%%%s takes no arguments", cmd)
		}
	}
	return p, nil
}

// Append formats r into dst: a text line, or a JSON object and a newline.
func (f *Format) Append(dst []byte, r *Record) []byte {
	if f.json == nil {
		for i := range f.parts {
			dst = f.appendPart(dst, &f.parts[i], r, true)
		}
		return dst
	}
	dst = append(dst, '{')
	first := true
	for i := range f.json {
		jf := &f.json[i]
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, jf.key...)
		if jf.typed {
			start := len(dst)
			dst = f.appendPart(dst, &jf.parts[0], r, false)
			if len(dst) == start {
				if f.omitEmpty {
					dst = dst[:mark]
					continue
				}
				dst = append(dst, "null"...)
			}
			first = false
			continue
		}
		dst = append(dst, '"')
		start := len(dst)
		literal := false
		for k := range jf.parts {
			literal = literal || jf.parts[k].op == opLiteral
			dst = f.appendPart(dst, &jf.parts[k], r, false)
		}
		if len(dst) == start && !literal {
			if f.omitEmpty {
				dst = dst[:mark]
				continue
			}
			dst = append(dst[:start-1], "null"...)
			first = false
			continue
		}
		if needsEscape(dst[start:]) {
			raw := append([]byte(nil), dst[start:]...)
			dst = appendJSONString(dst[:start], raw)
		}
		dst = append(dst, '"')
		first = false
	}
	return append(dst, '}', '\n')
}

func needsEscape(v []byte) bool {
	for _, c := range v {
		if c == '"' || c == '\\' || c < 0x20 {
			return true
		}
	}
	return false
}

// appendJSONString appends v escaped for a JSON string body.
func appendJSONString(dst, v []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendPart appends one part; dash prints "-" for an empty value (text).
func (f *Format) appendPart(dst []byte, p *part, r *Record, dash bool) []byte {
	start := len(dst)
	s := r.Stream
	switch p.op {
	case opLiteral:
		return append(dst, p.literal...)
	case opStartTime:
		if !r.Start.IsZero() {
			dst = appendStartTime(dst, r.Start)
		}
	case opReq:
		if r.Request != nil {
			var ok bool
			if dst, ok = appendRequestValue(dst, r.Request, p.name); !ok && p.alt != "" {
				dst, _ = appendRequestValue(dst, r.Request, p.alt)
			}
		}
	case opResp:
		if r.Response != nil {
			v, ok := r.Response.Header.Get(p.name)
			if !ok && p.alt != "" {
				v, _ = r.Response.Header.Get(p.alt)
			}
			dst = append(dst, v...)
		}
	case opTrailer:
		if r.Response != nil {
			v, ok := r.Response.Trailer.Get(p.name)
			if !ok && p.alt != "" {
				v, _ = r.Response.Trailer.Get(p.alt)
			}
			dst = append(dst, v...)
		}
	case opResponseCode:
		dst = strconv.AppendInt(dst, int64(r.Code), 10)
	case opResponseFlags, opResponseFlagsLong:
		dst = r.Flags.AppendTo(dst)
	case opResponseCodeDetails:
		dst = append(dst, r.Details...)
	case opTermination:
		dst = append(dst, r.Termination...)
	case opDuration:
		dst = strconv.AppendInt(dst, r.Duration.Milliseconds(), 10)
	case opBytesReceived:
		dst = strconv.AppendInt(dst, r.BytesIn, 10)
	case opBytesSent:
		dst = strconv.AppendInt(dst, r.BytesOut, 10)
	case opUpstreamHost:
		if r.Host.IsValid() {
			dst = r.Host.AppendTo(dst)
		}
	case opUpstreamCluster:
		dst = append(dst, r.Cluster...)
	case opUpstreamLocalAddress:
		// The local end of an upstream HBONE stream is not tracked: "-".
	case opUpstreamFailure:
		dst = append(dst, r.Failure...)
	case opRouteName:
		dst = append(dst, r.RouteName...)
	case opUpstreamRequestAttempts:
		if s != nil {
			dst = strconv.AppendInt(dst, int64(s.Attempts), 10)
		}
	case opPeerURISAN, opLocalURISAN, opRemoteAddr, opRemoteAddrNoPort, opDirectRemoteAddr, opDirectRemoteAddrNoPort,
		opLocalAddr, opLocalAddrNoPort, opServerName:
		dst = appendDownstream(dst, p.op, r)
	case opProtocol:
		if r.Request != nil && r.Request.Proto != l7.ProtoUnknown {
			dst = append(dst, r.Request.Proto.String()...)
		}
	case opHostname:
		dst = append(dst, f.hostname...)
	case opFilterState:
		dst = appendFilterState(dst, p, r)
	}
	if p.maxLen > 0 && len(dst)-start > p.maxLen {
		dst = dst[:start+p.maxLen]
	}
	if dash && len(dst) == start && !f.omitEmpty {
		dst = append(dst, '-')
	}
	return dst
}

func appendDownstream(dst []byte, o op, r *Record) []byte {
	d := r.Downstream
	if d == nil {
		return dst
	}
	remote := d.RemoteAddr
	if r.Stream != nil {
		remote = r.Stream.TrustedRemoteAddr()
	}
	addr := func(a netip.AddrPort, port bool) []byte { return appendAddr(dst, a, port) }
	switch o {
	case opPeerURISAN:
		return append(dst, d.PeerURI...)
	case opLocalURISAN:
		return append(dst, d.LocalURI...)
	case opRemoteAddr:
		return addr(remote, true)
	case opRemoteAddrNoPort:
		return addr(remote, false)
	case opDirectRemoteAddr:
		return addr(d.RemoteAddr, true)
	case opDirectRemoteAddrNoPort:
		return addr(d.RemoteAddr, false)
	case opLocalAddr:
		return addr(d.Destination, true)
	case opLocalAddrNoPort:
		return addr(d.Destination, false)
	case opServerName:
		return append(dst, d.ServerName...)
	}
	return dst
}

func appendAddr(dst []byte, a netip.AddrPort, port bool) []byte {
	if !a.IsValid() {
		return dst
	}
	if !port || a.Port() == 0 {
		return a.Addr().AppendTo(dst)
	}
	return a.AppendTo(dst)
}

func appendFilterState(dst []byte, p *part, r *Record) []byte {
	if p.alt != "" {
		var info PeerInfo
		switch p.name {
		case "downstream_peer_obj", "downstream_peer":
			info = r.Source
		case "upstream_peer_obj", "upstream_peer":
			info = r.Destination
		}
		if info != nil {
			dst = append(dst, info(p.alt)...)
		}
		return dst
	}
	if r.Downstream != nil {
		v, _ := r.Downstream.FilterState(p.name)
		dst = append(dst, v...)
	}
	return dst
}

// appendRequestValue appends %REQ(name)%: a pseudo-header's field or the
// header's first value; false when absent.
func appendRequestValue(dst []byte, req *l7.Request, name string) ([]byte, bool) {
	switch name {
	case ":method":
		return append(dst, req.Method...), req.Method != ""
	case ":path":
		return append(dst, req.Path...), len(req.Path) > 0
	case ":authority", "host":
		return append(dst, req.Authority...), len(req.Authority) > 0
	case ":scheme":
		return append(dst, req.Scheme...), req.Scheme != ""
	case ":protocol":
		return append(dst, req.Protocol...), req.Protocol != ""
	}
	v, ok := req.Header.Get(name)
	return append(dst, v...), ok
}

// StreamDetails is %RESPONSE_CODE_DETAILS% for a stream whose filters said
// nothing (Stream.ResponseCodeDetails empty): Envoy's words for the usual
// cases, from the stream's local reply and response flags.
func StreamDetails(s *filters.Stream) string {
	if s.Local == nil {
		if s.Response != nil {
			return "via_upstream"
		}
		return ""
	}
	switch {
	case s.ResponseFlags&filters.FlagNR != 0:
		return "route_not_found"
	case s.ResponseFlags&filters.FlagUH != 0:
		return "no_healthy_upstream"
	case s.ResponseFlags&filters.FlagUF != 0:
		return "upstream_reset_before_response_started{connection_failure}"
	case s.ResponseFlags&filters.FlagUC != 0:
		return "upstream_reset_before_response_started{connection_termination}"
	case s.ResponseFlags&filters.FlagUT != 0:
		return "upstream_response_timeout"
	case s.ResponseFlags&filters.FlagFI != 0:
		return "fault_filter_abort"
	case s.ResponseFlags&filters.FlagDC != 0:
		return "downstream_remote_disconnect"
	}
	return "direct_response"
}

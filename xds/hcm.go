package xds

import (
	"fmt"
	"strings"
	"time"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	uuidv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/request_id/uuid/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/telemetry/tracing"
)

const hcmFilterName = "envoy.filters.network.http_connection_manager"

// CodecType is the downstream HTTP version an HttpConnectionManager speaks.
type CodecType int

// Codec types.
const (
	// CodecAuto tells HTTP/2 (its preface) from HTTP/1.1 by the first bytes.
	CodecAuto CodecType = iota
	CodecHTTP1
	CodecHTTP2
)

// HTTPConnectionManager is a decoded
// envoy.filters.network.http_connection_manager: the terminal network
// filter of an HTTP filter chain. Read-only; its Chain and Routes are safe
// for concurrent use.
type HTTPConnectionManager struct {
	StatPrefix string
	Codec      CodecType
	// Chain is the http_filters, built once; Routes the inline
	// route_config.
	Chain       *filters.Chain
	Routes      *route.Table
	FilterNames []string

	// ServerName is the server response header; "envoy" by default (istiod
	// writes "istio-envoy"), set unless the upstream already set one when
	// PassThroughServer.
	ServerName        string
	PassThroughServer bool

	// Timeouts: stream_idle_timeout (5 min), request_timeout (none),
	// request_headers_timeout (none), common_http_protocol_options
	// idle_timeout (1 h), max_connection_duration (none) and
	// max_stream_duration (none). 0 disables. DrainTimeout is drain_timeout
	// (5 s): on an HTTP/2 connection the connection manager drains itself
	// (max_connection_duration), the time between the GOAWAY notice and the
	// final GOAWAY; on an HTTP/1.1 one, how long an idle connection is kept
	// for a last request. proxy/httpconn enforces them
	// (docs/hardening.md, "Timeouts").
	StreamIdleTimeout     time.Duration
	RequestTimeout        time.Duration
	RequestHeadersTimeout time.Duration
	IdleTimeout           time.Duration
	MaxConnectionDuration time.Duration
	MaxStreamDuration     time.Duration
	DrainTimeout          time.Duration

	// MaxRequestHeadersBytes (60 KiB) and MaxHeadersCount (100) bound a
	// request's header section.
	MaxRequestHeadersBytes int
	MaxHeadersCount        int

	// HTTP2 are the downstream HTTP/2 settings.
	HTTP2 DownstreamHTTP2

	// UseRemoteAddress, XFFNumTrustedHops and SkipXFFAppend govern
	// x-forwarded-for as in Envoy.
	UseRemoteAddress  bool
	XFFNumTrustedHops uint32
	SkipXFFAppend     bool

	// GenerateRequestID (true) sets x-request-id when a request lacks one;
	// PreserveExternalRequestID keeps an edge request's own;
	// AlwaysSetRequestIDInResponse echoes it in responses.
	GenerateRequestID            bool
	PreserveExternalRequestID    bool
	AlwaysSetRequestIDInResponse bool

	// NormalizePath applies RFC 3986 normalization to :path; MergeSlashes
	// merges repeated slashes; EscapedSlashes is what to do with %2F and %5C.
	NormalizePath  bool
	MergeSlashes   bool
	EscapedSlashes EscapedSlashesAction

	// Proxy100Continue passes Expect: 100-continue upstream; otherwise the
	// waypoint answers it (either way the client gets its 100).
	Proxy100Continue bool

	// Upgrades are the upgrade types allowed (lower-case: "websocket",
	// "connect").
	Upgrades map[string]bool

	// AccessLog are the access_log entries, each line written once per
	// request; Tracing the tracing config (nil: no spans, no trace
	// context added).
	AccessLog []*accesslog.Logger
	Tracing   *tracing.Config
	// Stats are the overrides of the chain's istio.stats filter for the
	// standard metrics of its requests (nil: none; see stats.go).
	Stats *metrics.Overrides
}

// DownstreamHTTP2 are an HttpConnectionManager's http2_protocol_options,
// with the waypoint's defaults: 100 streams, 64 KiB stream and 1 MiB
// connection windows (Envoy's recommended values for untrusted peers).
type DownstreamHTTP2 struct {
	MaxConcurrentStreams        uint32
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
}

// EscapedSlashesAction is path_with_escaped_slashes_action.
type EscapedSlashesAction int

// Escaped-slash actions implemented (Envoy's IMPLEMENTATION_SPECIFIC_DEFAULT
// is KEEP_UNCHANGED).
const (
	EscapedSlashesKeep EscapedSlashesAction = iota
	EscapedSlashesReject
	EscapedSlashesUnescape
)

// Envoy's HttpConnectionManager defaults, and the waypoint's for HTTP/2.
var (
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultHTTPIdleTimeout   = time.Hour
	DefaultHCMDrainTimeout   = 5 * time.Second
	DefaultDownstreamHTTP2   = DownstreamHTTP2{MaxConcurrentStreams: 100, InitialStreamWindowSize: 64 << 10,
		InitialConnectionWindowSize: 1 << 20}
)

// hcmAllowlist lists what of an HttpConnectionManager is implemented. It is
// apart from allowlist: the HCM arrives in an Any, checked when unpacked.
var hcmAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": fields(
		"codec_type", "stat_prefix", "http_filters", "server_name", "server_header_transformation",
		"stream_idle_timeout", "request_timeout", "request_headers_timeout", "common_http_protocol_options",
		"http2_protocol_options", "max_request_headers_kb", "use_remote_address", "xff_num_trusted_hops",
		"skip_xff_append", "generate_request_id", "preserve_external_request_id", "always_set_request_id_in_response",
		"upgrade_configs", "normalize_path", "merge_slashes", "path_with_escaped_slashes_action",
		"proxy_100_continue", "request_id_extension", "delayed_close_timeout", "drain_timeout",
		"route_config*",            // checked whole by route.Compile, with its own list
		"access_log*", "tracing*"), // checked by telemetry/accesslog and telemetry/tracing
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                          fields("name", "typed_config", "is_optional"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": fields("upgrade_type", "enabled"),
	"envoy.extensions.filters.network.http_connection_manager.v3.RequestIDExtension":                  fields("typed_config"),
	"envoy.config.core.v3.HttpProtocolOptions":                                                        fields("idle_timeout", "max_headers_count", "max_connection_duration", "max_stream_duration"),
	"envoy.config.core.v3.Http2ProtocolOptions":                                                       fields("max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size"),
}

// decodeHCM decodes an HttpConnectionManager filter; errors are relative
// to it.
//
// istiod writes one connection manager per Service port, each the same
// but for its inline route_config: a build decodes the rest once (checks,
// access logs, tracing, the http_filters' configs) and, for each other
// connection manager with the same bytes but its route_config, decodes
// only that and builds the filters from the configs decoded; a
// connection manager that fails so is decoded whole, for the error.
func decodeHCM(a *anypb.Any, b *build) (*HTTPConnectionManager, error) {
	routeBytes, rest, split := hcmSplit(a.GetValue(), b.scratch[:0])
	b.scratch = rest[:0]
	if split {
		if sh := b.hcms[string(rest)]; sh != nil {
			if h, err := sh.with(routeBytes, b); err == nil {
				return h, nil
			}
		}
	}
	h, filters, err := decodeHCMWhole(a, b)
	if err != nil || !split {
		return h, err
	}
	sh := &hcmShared{h: *h, filters: filters}
	sh.h.Routes, sh.h.Chain = nil, nil
	if b.hcms == nil {
		b.hcms = map[string]*hcmShared{}
	}
	b.hcms[string(rest)] = sh
	return h, nil
}

// hcmShared is an HttpConnectionManager decoded but for its route_config
// (no Routes, no Chain), and its http_filters resolved: what a build
// shares between the connection managers that differ only in their
// route_config. Read-only once made.
type hcmShared struct {
	h       HTTPConnectionManager
	filters []resolvedFilter
}

// with is the connection manager sh describes with the route_config
// whose wire bytes are routeBytes: validated and compiled, and its
// filters built, as decodeHCMWhole would make them.
func (sh *hcmShared) with(routeBytes []byte, b *build) (*HTTPConnectionManager, error) {
	rc := &routev3.RouteConfiguration{}
	if err := proto.Unmarshal(routeBytes, rc); err != nil {
		return nil, err
	}
	// The rules protoc-gen-validate generated for the connection manager
	// check its route_config with the route configuration's own.
	if err := validate(rc); err != nil {
		return nil, err
	}
	table, err := compileRoutes(rc, b)
	if err != nil {
		return nil, err
	}
	chain, err := buildResolved(b, sh.filters)
	if err != nil {
		return nil, err
	}
	h := sh.h
	h.Routes, h.Chain = table, chain
	return &h, nil
}

// hcmSplit splits the wire bytes of an HttpConnectionManager into its
// route_config's (its occurrences merged, as decoding merges them) and the
// rest, appended to rest in order. split is false when the bytes do not
// parse, have no route_config or have another route specifier (rds,
// scoped_routes: fields of the same oneof).
func hcmSplit(b, rest []byte) (routeBytes, restOut []byte, split bool) {
	found := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, rest, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, rest, false
		}
		switch {
		case num == hcmFieldRDS || num == hcmFieldScopedRoutes:
			return nil, rest, false
		case num == hcmFieldRouteConfig && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(b[n:])
			if found {
				routeBytes = append(routeBytes[:len(routeBytes):len(routeBytes)], v...)
			} else {
				routeBytes, found = v, true
			}
		default:
			rest = append(rest, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return routeBytes, rest, found
}

// decodeHCMWhole is decodeHCM without sharing: it decodes the whole
// connection manager and returns, with it, its http_filters resolved.
func decodeHCMWhole(a *anypb.Any, b *build) (*HTTPConnectionManager, []resolvedFilter, error) {
	var pb hcmv3.HttpConnectionManager
	if err := proto.Unmarshal(a.GetValue(), &pb); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
	}
	if err := hcmAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, nil, err
	}
	h := &HTTPConnectionManager{
		StatPrefix:                   pb.GetStatPrefix(),
		ServerName:                   "envoy",
		MaxRequestHeadersBytes:       60 << 10,
		MaxHeadersCount:              100,
		HTTP2:                        DefaultDownstreamHTTP2,
		UseRemoteAddress:             pb.GetUseRemoteAddress().GetValue(),
		XFFNumTrustedHops:            pb.GetXffNumTrustedHops(),
		SkipXFFAppend:                pb.GetSkipXffAppend(),
		GenerateRequestID:            true,
		PreserveExternalRequestID:    pb.GetPreserveExternalRequestId(),
		AlwaysSetRequestIDInResponse: pb.GetAlwaysSetRequestIdInResponse(),
		NormalizePath:                pb.GetNormalizePath().GetValue(),
		MergeSlashes:                 pb.GetMergeSlashes(),
		Proxy100Continue:             pb.GetProxy_100Continue(),
		Upgrades:                     map[string]bool{},
	}
	switch pb.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		h.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		h.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		h.Codec = CodecHTTP2
	default:
		return nil, nil, errAt("codec_type", "%v is not supported", pb.GetCodecType())
	}
	if n := pb.GetServerName(); n != "" {
		h.ServerName = n
	}
	switch pb.GetServerHeaderTransformation() {
	case hcmv3.HttpConnectionManager_OVERWRITE:
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		h.PassThroughServer = true
	default:
		return nil, nil, errAt("server_header_transformation", "%v is not supported", pb.GetServerHeaderTransformation())
	}
	if pb.GetGenerateRequestId() != nil {
		h.GenerateRequestID = pb.GetGenerateRequestId().GetValue()
	}
	if err := h.decodeTimeouts(&pb); err != nil {
		return nil, nil, err
	}
	if kb := pb.GetMaxRequestHeadersKb(); kb != nil {
		h.MaxRequestHeadersBytes = int(kb.GetValue()) << 10
	}
	if n := pb.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); n != nil {
		h.MaxHeadersCount = int(n.GetValue())
	}
	if o := pb.GetHttp2ProtocolOptions(); o != nil {
		if v := o.GetMaxConcurrentStreams(); v != nil {
			h.HTTP2.MaxConcurrentStreams = v.GetValue()
		}
		if v := o.GetInitialStreamWindowSize(); v != nil {
			h.HTTP2.InitialStreamWindowSize = v.GetValue()
		}
		if v := o.GetInitialConnectionWindowSize(); v != nil {
			h.HTTP2.InitialConnectionWindowSize = v.GetValue()
		}
	}
	switch pb.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		h.EscapedSlashes = EscapedSlashesReject
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		h.EscapedSlashes = EscapedSlashesUnescape
	default:
		return nil, nil, errAt("path_with_escaped_slashes_action", "%v is not supported", pb.GetPathWithEscapedSlashesAction())
	}
	for i, u := range pb.GetUpgradeConfigs() {
		if len(u.GetFilters()) > 0 {
			return nil, nil, errAt(idx("upgrade_configs", i)+".filters", "not supported yet")
		}
		if u.GetEnabled() == nil || u.GetEnabled().GetValue() {
			h.Upgrades[strings.ToLower(u.GetUpgradeType())] = true
		}
	}
	if ext := pb.GetRequestIdExtension(); ext != nil {
		var uuid uuidv3.UuidRequestIdConfig
		if ext.GetTypedConfig().MessageName() != nameOf(&uuid) {
			return nil, nil, errAt("request_id_extension.typed_config", "unsupported request ID extension %s", ext.GetTypedConfig().GetTypeUrl())
		}
	}

	var err error
	if h.AccessLog, err = accesslog.Decode(pb.GetAccessLog()); err != nil {
		return nil, nil, err
	}
	if err := checkLogClusters(h.AccessLog, b.clusters); err != nil {
		return nil, nil, err
	}
	if h.Tracing, err = tracing.Decode(pb.GetTracing()); err != nil {
		return nil, nil, at("tracing", err)
	}
	if h.Tracing != nil && b.clusters[h.Tracing.Cluster] == nil {
		return nil, nil, errAt("tracing."+h.Tracing.ClusterField, "unknown cluster %q", h.Tracing.Cluster)
	}

	rc := pb.GetRouteConfig()
	if rc == nil {
		return nil, nil, errAt("route_config", "required (RDS is not supported yet)")
	}
	table, err := compileRoutes(rc, b)
	if err != nil {
		return nil, nil, at("route_config", err)
	}
	h.Routes = table

	chain, names, resolved, err := buildChain(b, pb.GetHttpFilters())
	if err != nil {
		return nil, nil, err
	}
	h.Chain, h.FilterNames = chain, names
	if h.Stats, err = httpStatsOverrides(b, pb.GetHttpFilters()); err != nil {
		return nil, nil, err
	}
	// The generated rules run last, so that our own errors, which name
	// fields the way all others do, come first.
	if err := validate(&pb); err != nil {
		return nil, nil, err
	}
	return h, resolved, nil
}

// compileRoutes compiles an inline route configuration against the
// build's clusters and filters. A route to a cluster the build does not
// have is an error unless the configuration sets validate_clusters false,
// as istiod does: Envoy then loads it and answers such a route 503 (NC)
// until the cluster comes, which is what the data path does with a route
// to a cluster the snapshot has not. istiod may send a new Service's
// listener before the clusters that have its cluster; refused, it would
// not be sent again before the next change to the listeners.
func compileRoutes(rc *routev3.RouteConfiguration, b *build) (*route.Table, error) {
	opts := route.CompileOptions{
		ClusterExists:   func(name string) bool { return b.clusters[name] != nil },
		PerFilterConfig: b.perFilterConfig,
	}
	if v := rc.GetValidateClusters(); v != nil && !v.GetValue() {
		opts.ClusterExists = nil
	}
	return route.Compile(rc, opts)
}

func (h *HTTPConnectionManager) decodeTimeouts(pb *hcmv3.HttpConnectionManager) error {
	var err error
	if h.StreamIdleTimeout, err = duration(pb.GetStreamIdleTimeout(), DefaultStreamIdleTimeout); err != nil {
		return at("stream_idle_timeout", err)
	}
	if h.RequestTimeout, err = duration(pb.GetRequestTimeout(), 0); err != nil {
		return at("request_timeout", err)
	}
	if h.RequestHeadersTimeout, err = duration(pb.GetRequestHeadersTimeout(), 0); err != nil {
		return at("request_headers_timeout", err)
	}
	common := pb.GetCommonHttpProtocolOptions()
	if h.IdleTimeout, err = duration(common.GetIdleTimeout(), DefaultHTTPIdleTimeout); err != nil {
		return at("common_http_protocol_options.idle_timeout", err)
	}
	if h.MaxConnectionDuration, err = duration(common.GetMaxConnectionDuration(), 0); err != nil {
		return at("common_http_protocol_options.max_connection_duration", err)
	}
	if h.MaxStreamDuration, err = duration(common.GetMaxStreamDuration(), 0); err != nil {
		return at("common_http_protocol_options.max_stream_duration", err)
	}
	if h.DrainTimeout, err = duration(pb.GetDrainTimeout(), DefaultHCMDrainTimeout); err != nil {
		return at("drain_timeout", err)
	}
	return nil
}

// resolvedFilter is an http_filters entry resolved: its name, factory
// and decoded config (shared by the filters built from it: a factory does
// not modify its config).
type resolvedFilter struct {
	name    string
	factory *filters.Registration
	cfg     proto.Message
}

// buildChain builds the http_filters: each entry's factory from the
// registry, the last one the terminal filter (the router). It returns
// the entries it built, resolved, for buildResolved.
func buildChain(b *build, pbs []*hcmv3.HttpFilter) (*filters.Chain, []string, []resolvedFilter, error) {
	if len(pbs) == 0 {
		return nil, nil, nil, errAt("http_filters", "want at least the router")
	}
	var fs []filters.Filter
	var names []string
	var resolved []resolvedFilter
	for i, f := range pbs {
		path := idx("http_filters", i)
		factory, cfg, err := resolveFilter(f.GetName(), f.GetTypedConfig())
		if err != nil {
			if f.GetIsOptional() {
				continue // Envoy skips an optional filter it does not know
			}
			return nil, nil, nil, at(path, err)
		}
		built, err := factory.New(b.context(f.GetName()), cfg)
		if err != nil {
			return nil, nil, nil, at(path+".typed_config", err)
		}
		b.own(built)
		if _, dubbo := built.(interface{ DubboOnly() }); dubbo {
			return nil, nil, nil, errAt(path, "%q is a Dubbo filter", f.GetName())
		}
		names = append(names, f.GetName())
		fs = append(fs, built)
		resolved = append(resolved, resolvedFilter{name: f.GetName(), factory: factory, cfg: cfg})
	}
	last := len(fs) - 1
	terminal, ok := fs[last].(filters.Terminal)
	if !ok {
		return nil, nil, nil, errAt(idx("http_filters", len(pbs)-1), "the last HTTP filter must be terminal (the router), not %q", names[last])
	}
	for i, f := range fs[:last] {
		if _, ok := f.(filters.Terminal); ok {
			return nil, nil, nil, errAt(idx("http_filters", i), "%q is terminal and must be the last filter", names[i])
		}
	}
	return filters.NewChain(terminal, fs[:last]...), names, resolved, nil
}

// buildResolved builds a chain again from the entries buildChain
// resolved for it: new filters from the same configs. Its errors name no
// field: the caller decodes whole for that.
func buildResolved(b *build, rs []resolvedFilter) (*filters.Chain, error) {
	fs := make([]filters.Filter, len(rs))
	for i, r := range rs {
		built, err := r.factory.New(b.context(r.name), r.cfg)
		if err != nil {
			return nil, err
		}
		b.own(built)
		if _, dubbo := built.(interface{ DubboOnly() }); dubbo {
			return nil, fmt.Errorf("%q is a Dubbo filter", r.name)
		}
		fs[i] = built
	}
	last := len(fs) - 1
	terminal, ok := fs[last].(filters.Terminal)
	if !ok {
		return nil, fmt.Errorf("the last HTTP filter must be terminal, not %q", rs[last].name)
	}
	for i, f := range fs[:last] {
		if _, ok := f.(filters.Terminal); ok {
			return nil, fmt.Errorf("%q is terminal and must be the last filter", rs[i].name)
		}
	}
	return filters.NewChain(terminal, fs[:last]...), nil
}

// resolveFilter finds the factory for a filter config and decodes the
// config: a TypedStruct carries its own type URL and a Struct; any other
// Any is the config proto itself.
func resolveFilter(name string, a *anypb.Any) (*filters.Registration, proto.Message, error) {
	if a == nil {
		f, err := filters.Lookup(name, "")
		return f, nil, err
	}
	var ts1 udpatypev1.TypedStruct
	var ts3 xdstypev3.TypedStruct
	var typeURL string
	var value *structpb.Struct
	switch a.MessageName() {
	case nameOf(&ts1):
		if err := a.UnmarshalTo(&ts1); err != nil {
			return nil, nil, at("typed_config", err)
		}
		typeURL, value = ts1.GetTypeUrl(), ts1.GetValue()
	case nameOf(&ts3):
		if err := a.UnmarshalTo(&ts3); err != nil {
			return nil, nil, at("typed_config", err)
		}
		typeURL, value = ts3.GetTypeUrl(), ts3.GetValue()
	}
	if typeURL != "" {
		f, err := filters.Lookup(name, typeURL)
		if value == nil {
			value = &structpb.Struct{}
		}
		return f, value, err
	}
	f, err := filters.Lookup(name, a.GetTypeUrl())
	if err != nil {
		return nil, nil, err
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, nil, at("typed_config", err)
	}
	return f, m, nil
}

// perFilterConfig parses a route's typed_per_filter_config entry with the
// filter's factory. A route.v3.FilterConfig wrapper is unwrapped; an
// optional config for an unknown filter is dropped, as in Envoy.
func (b *build) perFilterConfig(filterName string, a *anypb.Any) (any, error) {
	optional := false
	var fc routev3.FilterConfig
	if a.MessageName() == nameOf(&fc) {
		if err := a.UnmarshalTo(&fc); err != nil {
			return nil, err
		}
		if fc.GetDisabled() {
			return nil, fmt.Errorf("disabled per-route filters are not supported yet")
		}
		a, optional = fc.GetConfig(), fc.GetIsOptional()
	}
	factory, cfg, err := resolveFilter(filterName, a)
	if err != nil {
		if optional {
			return nil, nil
		}
		return nil, err
	}
	pr, ok := factory.PerRoute()
	if !ok {
		return nil, fmt.Errorf("filter %q takes no per-route config", filterName)
	}
	v, err := pr.ParsePerRoute(b.context(filterName), cfg)
	if err == nil {
		b.own(v)
	}
	return v, err
}

package accesslog

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/clustergrpc"
)

// ALSBufferBytes is the default buffer_size_bytes of a gRPC access log:
// entries are sent once this many bytes wait, or every flush interval.
const ALSBufferBytes = 16 << 10

// ALSMaxPending is how many entries may wait for an access log service;
// past it new ones are dropped (and counted), so that logging never blocks
// a request.
const ALSMaxPending = 16 << 10

var alsDropped = dropped.WithLabelValues("grpc_access_log_service")

// GRPCLogs is an envoy.access_loggers.http_grpc or tcp_grpc logger: an
// entry per request (HTTPAccessLogEntry) or connection (TCPAccessLogEntry)
// streamed to Envoy's gRPC access log service
// (AccessLogService/StreamAccessLogs) at Cluster, the stream's first message
// naming the node and LogName. Read-only.
type GRPCLogs struct {
	// TCP selects tcp_grpc: TCP entries (a record with a request is
	// logged as a TCP entry too, as Envoy's tcp_grpc logger does).
	TCP bool
	// Cluster is the service (grpc_service.envoy_grpc), Authority its
	// :authority (default the cluster name).
	Cluster, Authority string
	LogName            string
	FlushInterval      time.Duration
	BufferBytes        int
	// FilterState are the filter state objects logged: the waypoint has
	// the peers' (downstream_peer, upstream_peer), as Structs of Istio's
	// peer metadata fields.
	FilterState []string
	// The additional headers and trailers logged (lower-case names).
	RequestHeaders, ResponseHeaders, ResponseTrailers []string
}

var alsAllowlist = pbcheck.Allowlist{
	"envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig": pbcheck.F("common_config",
		"additional_request_headers_to_log", "additional_response_headers_to_log", "additional_response_trailers_to_log"),
	"envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig": pbcheck.F("common_config"),
	"envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig": pbcheck.F(
		"log_name", "grpc_service", "transport_api_version", "buffer_flush_interval", "buffer_size_bytes", "filter_state_objects_to_log"),
	"envoy.config.core.v3.GrpcService":           pbcheck.F("envoy_grpc", "timeout"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc": pbcheck.F("cluster_name", "authority"),
}

// grpcCommon is what a gRPC access log's common_config says of its service.
type grpcCommon struct {
	cluster, authority, logName string // authority defaults to the cluster
	flush                       time.Duration
}

// decodeCommon decodes the common_config of an access log sent to a gRPC
// service (the access log service's, OpenTelemetry's), each checked by its
// own allowlist al: V3, envoy_grpc with a cluster, and buffer_flush_interval
// (FlushInterval by default). Errors are relative to the access log.
func decodeCommon(cc *grpcalsv3.CommonGrpcAccessLogConfig, al pbcheck.Allowlist) (grpcCommon, error) {
	if cc == nil {
		return grpcCommon{}, pbcheck.ErrAt("common_config", "required")
	}
	if err := al.Check(cc.ProtoReflect()); err != nil {
		return grpcCommon{}, pbcheck.At("common_config", err)
	}
	if v := cc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return grpcCommon{}, pbcheck.ErrAt("common_config.transport_api_version", "%s is not supported: only V3", v)
	}
	gs := cc.GetGrpcService()
	if err := al.Check(gs.ProtoReflect()); err != nil {
		return grpcCommon{}, pbcheck.At("common_config.grpc_service", err)
	}
	eg, ok := gs.GetTargetSpecifier().(*corev3.GrpcService_EnvoyGrpc_)
	if !ok || eg.EnvoyGrpc.GetClusterName() == "" {
		return grpcCommon{}, pbcheck.ErrAt("common_config.grpc_service.envoy_grpc.cluster_name", "required")
	}
	c := grpcCommon{cluster: eg.EnvoyGrpc.GetClusterName(), authority: eg.EnvoyGrpc.GetAuthority(), logName: cc.GetLogName(), flush: FlushInterval}
	if c.authority == "" {
		c.authority = c.cluster
	}
	if d := cc.GetBufferFlushInterval(); d != nil {
		var err error
		if c.flush, err = pbcheck.Duration(d, FlushInterval); err != nil || c.flush <= 0 {
			return grpcCommon{}, pbcheck.ErrAt("common_config.buffer_flush_interval", "a positive duration is required")
		}
	}
	return c, nil
}

// decodeALS decodes an HttpGrpcAccessLogConfig or TcpGrpcAccessLogConfig.
func decodeALS(m proto.Message) (*GRPCLogs, error) {
	if err := alsAllowlist.Check(m.ProtoReflect()); err != nil {
		return nil, err
	}
	var cc *grpcalsv3.CommonGrpcAccessLogConfig
	g := &GRPCLogs{}
	switch c := m.(type) {
	case *grpcalsv3.HttpGrpcAccessLogConfig:
		cc = c.GetCommonConfig()
		lower := func(hs []string) []string {
			out := make([]string, len(hs))
			for i, h := range hs {
				out[i] = strings.ToLower(h)
			}
			return out
		}
		g.RequestHeaders = lower(c.GetAdditionalRequestHeadersToLog())
		g.ResponseHeaders = lower(c.GetAdditionalResponseHeadersToLog())
		g.ResponseTrailers = lower(c.GetAdditionalResponseTrailersToLog())
	case *grpcalsv3.TcpGrpcAccessLogConfig:
		cc, g.TCP = c.GetCommonConfig(), true
	}
	c, err := decodeCommon(cc, alsAllowlist)
	if err != nil {
		return nil, err
	}
	if c.logName == "" {
		return nil, pbcheck.ErrAt("common_config.log_name", "required")
	}
	g.Cluster, g.Authority, g.LogName, g.FlushInterval, g.BufferBytes = c.cluster, c.authority, c.logName, c.flush, ALSBufferBytes
	if b := cc.GetBufferSizeBytes(); b != nil {
		g.BufferBytes = int(b.GetValue())
	}
	g.FilterState = cc.GetFilterStateObjectsToLog()
	return g, nil
}

// needsPeers reports whether entries of g log the peers' filter state.
func (g *GRPCLogs) needsPeers() bool {
	for _, k := range g.FilterState {
		if k == "downstream_peer" || k == "upstream_peer" {
			return true
		}
	}
	return false
}

// NeedsPeers reports whether any of loggers reads Record.Source and
// Record.Destination (a gRPC access log with the peers' filter state).
func NeedsPeers(loggers []*Logger) bool {
	for _, l := range loggers {
		if l.ALS != nil && l.ALS.needsPeers() {
			return true
		}
	}
	return false
}

// alsSink is one stream's pending entries and its sender's wake-up.
type alsSink struct {
	mu      sync.Mutex
	http    []*datav3.HTTPAccessLogEntry // guarded by mu
	tcp     []*datav3.TCPAccessLogEntry  // guarded by mu
	bytes   int                          // of the pending entries, about; guarded by mu
	closed  bool                         // guarded by mu
	wake    chan struct{}
	maxSize int
}

// emitALS queues r's entry for g's service.
func (s *Sinks) emitALS(g *GRPCLogs, r *Record) {
	sk := s.alsSink(g)
	if sk == nil {
		return
	}
	common := g.common(r)
	var size int
	var he *datav3.HTTPAccessLogEntry
	var te *datav3.TCPAccessLogEntry
	if g.TCP {
		te = &datav3.TCPAccessLogEntry{CommonProperties: common,
			ConnectionProperties: &datav3.ConnectionProperties{ReceivedBytes: uint64(max(r.BytesIn, 0)), SentBytes: uint64(max(r.BytesOut, 0))}}
		size = proto.Size(te)
	} else {
		he = g.httpEntry(r, common)
		size = proto.Size(he)
	}
	sk.mu.Lock()
	if sk.closed || len(sk.http)+len(sk.tcp) >= ALSMaxPending {
		sk.mu.Unlock()
		alsDropped.Inc()
		return
	}
	if he != nil {
		sk.http = append(sk.http, he)
	} else {
		sk.tcp = append(sk.tcp, te)
	}
	sk.bytes += size
	full := sk.bytes >= sk.maxSize
	sk.mu.Unlock()
	if full {
		select {
		case sk.wake <- struct{}{}:
		default:
		}
	}
}

// common is r's AccessLogCommon. Every string is a copy, so that r's
// content does not escape: a caller's record of a request without a gRPC
// access log stays where it put it (allocgate).
func (g *GRPCLogs) common(r *Record) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		SampleRate:                     1,
		StartTime:                      timestamppb.New(r.Start),
		Duration:                       durationpb.New(r.Duration),
		TimeToLastDownstreamTxByte:     durationpb.New(r.Duration),
		UpstreamCluster:                strings.Clone(r.Cluster),
		UpstreamRemoteAddress:          socketAddress(r.Host),
		UpstreamTransportFailureReason: strings.Clone(r.Failure),
		RouteName:                      strings.Clone(r.RouteName),
		ConnectionTerminationDetails:   strings.Clone(r.Termination),
		ResponseFlags:                  responseFlags(r.Flags),
	}
	if d := r.Downstream; d != nil {
		remote := d.RemoteAddr
		if r.Stream != nil {
			remote = r.Stream.TrustedRemoteAddr()
		}
		local := d.LocalAddr
		if d.Destination.IsValid() {
			local = d.Destination
		}
		c.DownstreamRemoteAddress, c.DownstreamDirectRemoteAddress = socketAddress(remote), socketAddress(d.RemoteAddr)
		c.DownstreamLocalAddress = socketAddress(local)
		if d.PeerURI != "" {
			c.TlsProperties = &datav3.TLSProperties{TlsVersion: datav3.TLSProperties_TLSv1_3, TlsSniHostname: strings.Clone(d.ServerName),
				PeerCertificateProperties:  certProps(d.PeerURI),
				LocalCertificateProperties: certProps(d.LocalURI)}
		}
	}
	if r.Stream != nil {
		c.UpstreamRequestAttemptCount = uint32(max(r.Stream.Attempts, 0))
	}
	for _, k := range g.FilterState {
		var peer PeerInfo
		switch k {
		case "downstream_peer":
			peer = r.Source
		case "upstream_peer":
			peer = r.Destination
		}
		if peer == nil {
			continue
		}
		if a := peerStruct(peer); a != nil {
			if c.FilterStateObjects == nil {
				c.FilterStateObjects = map[string]*anypb.Any{}
			}
			c.FilterStateObjects[k] = a
		}
	}
	return c
}

// peerFields are the fields of Istio's peer metadata objects.
var peerFields = []string{"app", "version", "service", "revision", "cluster", "namespace", "workload", "name", "type"}

// peerStruct is a peer as a Struct of its fields, in an Any (nil when it
// has none).
func peerStruct(p PeerInfo) *anypb.Any {
	st := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, f := range peerFields {
		if v := p(f); v != "" {
			st.Fields[f] = structpb.NewStringValue(v)
		}
	}
	if len(st.Fields) == 0 {
		return nil
	}
	a, err := anypb.New(st)
	if err != nil {
		return nil
	}
	return a
}

func certProps(uri string) *datav3.TLSProperties_CertificateProperties {
	if uri == "" {
		return nil
	}
	return &datav3.TLSProperties_CertificateProperties{SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{
		{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: strings.Clone(uri)}}}}
}

func socketAddress(a netip.AddrPort) *corev3.Address {
	if !a.IsValid() {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: a.Addr().Unmap().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())}}}}
}

// responseFlags sets the ResponseFlags field of each flag: flag bit i is
// field number i+1 (Envoy's order), UAEX the unauthorized details.
func responseFlags(f filters.Flags) *datav3.ResponseFlags {
	if f == 0 {
		return nil
	}
	rf := &datav3.ResponseFlags{}
	m := rf.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := 0; f>>i != 0; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if filters.Flags(1<<i) == filters.FlagUAEX {
			rf.UnauthorizedDetails = &datav3.ResponseFlags_Unauthorized{Reason: datav3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}
			continue
		}
		if fd := fields.ByNumber(protoreflect.FieldNumber(i + 1)); fd != nil && fd.Kind() == protoreflect.BoolKind {
			m.Set(fd, protoreflect.ValueOfBool(true))
		}
	}
	return rf
}

var methods = map[string]corev3.RequestMethod{
	"GET": corev3.RequestMethod_GET, "HEAD": corev3.RequestMethod_HEAD, "POST": corev3.RequestMethod_POST,
	"PUT": corev3.RequestMethod_PUT, "DELETE": corev3.RequestMethod_DELETE, "CONNECT": corev3.RequestMethod_CONNECT,
	"OPTIONS": corev3.RequestMethod_OPTIONS, "TRACE": corev3.RequestMethod_TRACE, "PATCH": corev3.RequestMethod_PATCH,
}

// httpEntry is r's HTTPAccessLogEntry; a TCP connection's has the common
// properties only.
func (g *GRPCLogs) httpEntry(r *Record, common *datav3.AccessLogCommon) *datav3.HTTPAccessLogEntry {
	e := &datav3.HTTPAccessLogEntry{CommonProperties: common}
	req := r.Request
	if req == nil {
		return e
	}
	switch req.Proto {
	case l7.HTTP10:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP10
	case l7.HTTP11:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP11
	case l7.HTTP2:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP2
	}
	get := func(h *l7.Header, name string) string {
		v, _ := h.Get(name)
		return string(v)
	}
	rp := &datav3.HTTPRequestProperties{
		RequestMethod: methods[req.Method], Scheme: strings.Clone(req.Scheme), Authority: string(req.Authority), Path: string(req.Path),
		UserAgent: get(&req.Header, "user-agent"), Referer: get(&req.Header, "referer"),
		ForwardedFor: get(&req.Header, "x-forwarded-for"), RequestId: get(&req.Header, "x-request-id"),
		OriginalPath:        get(&req.Header, "x-envoy-original-path"),
		RequestHeadersBytes: uint64(headerSize(&req.Header)), RequestBodyBytes: uint64(max(r.BytesIn, 0)),
	}
	if _, port, err := net.SplitHostPort(string(req.Authority)); err == nil {
		var p uint32
		if _, err := fmt.Sscan(port, &p); err == nil {
			rp.Port = wrapperspb.UInt32(p)
		}
	}
	rp.RequestHeaders = pick(&req.Header, g.RequestHeaders)
	e.Request = rp
	resp := &datav3.HTTPResponseProperties{ResponseBodyBytes: uint64(max(r.BytesOut, 0)), ResponseCodeDetails: strings.Clone(r.Details)}
	if r.Code > 0 {
		resp.ResponseCode = wrapperspb.UInt32(uint32(r.Code))
	}
	if rs := r.Response; rs != nil {
		resp.ResponseHeadersBytes = uint64(headerSize(&rs.Header))
		resp.ResponseHeaders = pick(&rs.Header, g.ResponseHeaders)
		resp.ResponseTrailers = pick(&rs.Trailer, g.ResponseTrailers)
	}
	e.Response = resp
	return e
}

func headerSize(h *l7.Header) int {
	n := 0
	for _, f := range h.Fields() {
		n += len(f.Name) + len(f.Value)
	}
	return n
}

// pick returns the named headers present in h (nil for none).
func pick(h *l7.Header, names []string) map[string]string {
	var out map[string]string
	for _, n := range names {
		if v, ok := h.Get(n); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[n] = string(v)
		}
	}
	return out
}

// alsSink returns g's sink, starting its sender on first use: one stream
// per service cluster, authority, log name and kind.
func (s *Sinks) alsSink(g *GRPCLogs) *alsSink {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%v\x00%d\x00%d", g.Cluster, g.Authority, g.LogName, g.TCP, g.FlushInterval, g.BufferBytes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.Dial == nil {
		return nil
	}
	if sk := s.als[key]; sk != nil {
		return sk
	}
	conn, err := clustergrpc.NewClient(g.Authority, g.Cluster, s.Dial)
	if err != nil {
		s.logger().Error("access log: cannot make the access log service client", "cluster", g.Cluster, "error", err)
		return nil
	}
	if s.als == nil {
		s.als = map[string]*alsSink{}
	}
	sk := &alsSink{wake: make(chan struct{}, 1), maxSize: g.BufferBytes}
	s.als[key] = sk
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close()
		s.runALS(g, sk, alsv3.NewAccessLogServiceClient(conn))
	}()
	return sk
}

// alsStream is the sender's stream, opened when there is something to send
// and again after a failure; its first message carries the identifier.
type alsStream struct {
	cancel context.CancelFunc
	stream grpc.ClientStreamingClient[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]
}

// runALS sends the sink's entries every FlushInterval (or when its buffer
// is full), and once more when the sink is closed. A failed send drops its
// entries, as Envoy's logger does, and the next batch opens a new stream.
func (s *Sinks) runALS(g *GRPCLogs, sk *alsSink, client alsv3.AccessLogServiceClient) {
	t := time.NewTicker(g.FlushInterval)
	defer t.Stop()
	var st *alsStream
	defer func() {
		if st != nil {
			// The service answers when the stream ends; one that does not is
			// not waited for past 2 s.
			stop := time.AfterFunc(2*time.Second, st.cancel)
			st.stream.CloseAndRecv() //nolint:errcheck // the stream is done either way
			stop.Stop()
			st.cancel()
		}
	}()
	for {
		select {
		case <-t.C:
		case <-sk.wake:
		}
		sk.mu.Lock()
		hs, ts, closed := sk.http, sk.tcp, sk.closed
		sk.http, sk.tcp, sk.bytes = nil, nil, 0
		sk.mu.Unlock()
		if n := len(hs) + len(ts); n > 0 {
			msg := &alsv3.StreamAccessLogsMessage{}
			if g.TCP {
				msg.LogEntries = &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: ts}}
			} else {
				msg.LogEntries = &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: hs}}
			}
			if st == nil {
				ctx, cancel := context.WithCancel(context.Background())
				stream, err := client.StreamAccessLogs(ctx)
				if err != nil {
					cancel()
					alsDropped.Add(float64(n))
					s.logger().Warn("access log: cannot open the access log service stream", "cluster", g.Cluster, "error", err)
					continue
				}
				st = &alsStream{cancel: cancel, stream: stream}
				msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: s.Node, LogName: g.LogName}
			}
			if err := st.stream.Send(msg); err != nil {
				alsDropped.Add(float64(n))
				s.logger().Warn("access log: access log service stream failed", "cluster", g.Cluster, "entries", n, "error", err)
				st.cancel()
				st = nil
			}
		}
		if closed {
			return
		}
	}
}

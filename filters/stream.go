package filters

import (
	"context"
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Downstream describes where a stream came from. Read-only once the stream
// starts; shared by the streams of one connection.
type Downstream struct {
	// Peer is the verified identity of the HBONE peer (the source
	// ztunnel's workload identity); zero on a plaintext listener.
	Peer spiffe.ID
	// RemoteAddr and LocalAddr are the two ends of the downstream
	// connection.
	RemoteAddr, LocalAddr netip.AddrPort
	// Destination is the original destination: the HBONE :authority, or
	// the local address of a plaintext listener.
	Destination netip.AddrPort
	// PeerURI is Peer as its URI ("spiffe://td/ns/N/sa/S"), "" without a
	// peer: the filter state io.istio.peer_principal and
	// %DOWNSTREAM_PEER_URI_SAN%. Set by whoever sets Peer, once per
	// connection (NewDownstreamPeer does both).
	PeerURI string
	// LocalURI is the waypoint's own identity as a URI (the filter state
	// io.istio.local_principal); "" when unknown.
	LocalURI string
	// Authority is the HBONE CONNECT's :authority as received (the filter
	// state io.istio.connect_authority); "" on a plaintext listener.
	Authority string
	// ServerName is the TLS SNI the downstream asked for
	// (requested_server_name); "" when none, as on an HBONE stream, whose
	// inner connection carries no TLS.
	ServerName string
	// Baggage is the W3C baggage header the source ztunnel sent on the
	// CONNECT (its workload's cluster, namespace, name, app and version);
	// "" when none.
	Baggage string
}

// Filter state keys the waypoint sets for every downstream connection, as
// Istio's connect_terminate listener does with set_filter_state.
const (
	FilterStatePeerPrincipal    = "io.istio.peer_principal"
	FilterStateLocalPrincipal   = "io.istio.local_principal"
	FilterStateConnectAuthority = "io.istio.connect_authority"
)

// FilterState returns the string value of a filter state key the
// downstream connection carries (the keys above); false when it is not
// set. It does not allocate.
func (d *Downstream) FilterState(key string) (string, bool) {
	var v string
	switch key {
	case FilterStatePeerPrincipal:
		v = d.PeerURI
	case FilterStateLocalPrincipal:
		v = d.LocalURI
	case FilterStateConnectAuthority:
		v = d.Authority
	}
	return v, v != ""
}

// Observer watches a stream's upstream tries, one at a time. Its methods
// are called on the stream's goroutine and must not block.
type Observer interface {
	// StartAttempt is called before each try is sent; it may add headers
	// to req.Request (trace context).
	StartAttempt(s *Stream, req *UpstreamRequest)
	// EndAttempt is called when the try has its response headers (resp)
	// or failed (err).
	EndAttempt(s *Stream, req *UpstreamRequest, resp *l7.Response, err error)
}

// SendTry sends one upstream try of the stream through s.Upstream, telling
// its Observer, and records on the stream what access logs and metrics
// read: the try count, the cluster, the endpoint, and why the try failed.
// Routers call it for every try.
func (s *Stream) SendTry(req *UpstreamRequest) (*l7.Response, error) {
	return s.SendTryContext(s.Context, req)
}

// SendTryContext is SendTry under ctx, which must be s.Context or derived
// from it (the router's, which ends when the route timeout passes).
func (s *Stream) SendTryContext(ctx context.Context, req *UpstreamRequest) (*l7.Response, error) {
	s.Attempts++
	s.UpstreamCluster = req.Cluster
	if s.Observer != nil {
		s.Observer.StartAttempt(s, req)
	}
	resp, err := s.Upstream.RoundTrip(ctx, req)
	if s.Observer != nil {
		s.Observer.EndAttempt(s, req, resp, err)
	}
	s.UpstreamHost = req.Host
	s.UpstreamFailure = ""
	if err != nil {
		s.UpstreamFailure = err.Error()
	}
	return resp, err
}

// TrustedRemoteAddr returns RemoteAddr, or the connection's peer address
// when the connection manager set none.
func (s *Stream) TrustedRemoteAddr() netip.AddrPort {
	if s.RemoteAddr.IsValid() {
		return s.RemoteAddr
	}
	if s.Downstream != nil {
		return s.Downstream.RemoteAddr
	}
	return netip.AddrPort{}
}

// Route is what a filter may ask of the route a stream matched. The router
// implements it.
type Route interface {
	// Name is the route's name (may be empty).
	Name() string
	// FilterConfig returns the route's typed_per_filter_config for the
	// filter name, as that filter's factory parsed it (nil if none). The
	// most specific level wins: route, then virtual host, then route
	// configuration.
	FilterConfig(filterName string) any
}

// RouteResolver matches a stream to a route; nil when no route matches.
type RouteResolver interface {
	Resolve(s *Stream) Route
}

// LocalReply is an answer made by the proxy itself. The codec renders it
// per protocol: an HTTP status with Body, or for gRPC a 200 with
// grpc-status and grpc-message.
type LocalReply struct {
	Status int
	Body   string
	// GRPCStatus, when non-nil, is used for a gRPC request instead of the
	// code mapped from Status.
	GRPCStatus *int
	// Header holds extra response fields (e.g. from a direct_response).
	Header l7.Header
	// Flag is Envoy's response flag for telemetry (e.g. FlagNR, FlagFI);
	// 0 for none.
	Flag Flags
	// Kind, when not status.Unknown, classifies the reply (status.Denied
	// for a policy denial), so that a codec whose protocol has codes of
	// its own renders it through protocols/status (Dubbo:
	// Kind.DubboStatus).
	Kind status.Kind
}

// Stream is one request/response exchange in a chain. It is driven by one
// goroutine; filters must not keep it after the stream ends.
type Stream struct {
	// Context is cancelled when the downstream goes away or the stream
	// ends. Filters that block should honour it.
	Context context.Context
	// Request is the request; Response is nil until the terminal filter
	// sets it, and stays nil for a local reply (then Local is set).
	Request  *l7.Request
	Response *l7.Response
	// Downstream is where the stream came from.
	Downstream *Downstream
	// Upstream reaches clusters; set by the connection manager.
	Upstream Upstream
	// Start is when the request headers arrived.
	Start time.Time
	// GRPC is true when the request's content-type is gRPC's.
	GRPC bool
	// GRPCMessageCounts is set by a chain's grpc_stats filter emitting
	// filter state (as istiod's chains have it): the connection manager
	// then reports the gRPC stream's message counts each way
	// (istio_request_messages_total, istio_response_messages_total).
	GRPCMessageCounts bool
	// Local is set when the stream is answered locally.
	Local *LocalReply
	// ResponseFlags collects Envoy's response flags for telemetry.
	ResponseFlags Flags
	// ResponseCodeDetails says why a local reply was made, in Envoy's
	// words (%RESPONSE_CODE_DETAILS%, e.g.
	// "rbac_access_denied_matched_policy[name]"); "" when the upstream
	// answered or nobody said.
	ResponseCodeDetails string
	// RemoteAddr is the downstream address as the connection manager
	// trusts it (Envoy's remote address: from x-forwarded-for when
	// use_remote_address is false and the header is there, else the
	// connection's peer); the zero value means Downstream.RemoteAddr.
	RemoteAddr netip.AddrPort
	// UpstreamCluster and UpstreamHost are the cluster and endpoint of the
	// last upstream try (%UPSTREAM_CLUSTER%, %UPSTREAM_HOST%); set by the
	// router. UpstreamFailure is why the last try failed before a
	// response (%UPSTREAM_TRANSPORT_FAILURE_REASON%), "" otherwise.
	UpstreamCluster string
	UpstreamHost    netip.AddrPort
	UpstreamFailure string
	// Attempts counts the upstream tries (retries are Attempts-1).
	Attempts int
	// Observer, when set by the connection manager, is told of each
	// upstream try (tracing's client spans, retry counters).
	Observer Observer

	resolver RouteResolver
	route    Route
	resolved bool
	onEnd    []func()
	local    LocalReply                  // Local's storage, so a local reply allocates nothing
	metadata map[string]*structpb.Struct // dynamic metadata, nil until a filter sets some
	strMeta  []metadataEntry             // string values of dynamic metadata; storage reused by Init
}

// metadataEntry is one string value of the stream's dynamic metadata.
type metadataEntry struct{ filter, key, value string }

// NewStream prepares a stream for a chain run. resolver may be nil (no
// routes).
func NewStream(ctx context.Context, req *l7.Request, down *Downstream, resolver RouteResolver) *Stream {
	s := &Stream{}
	s.Init(ctx, req, down, resolver)
	return s
}

// Init readies s for a new request, so codecs can reuse one Stream value.
func (s *Stream) Init(ctx context.Context, req *l7.Request, down *Downstream, resolver RouteResolver) {
	onEnd, md := s.onEnd[:0], s.strMeta[:0]
	*s = Stream{Context: ctx, Request: req, Downstream: down, resolver: resolver, Start: time.Now(), onEnd: onEnd, strMeta: md}
	if ct, ok := req.Header.Get("content-type"); ok {
		s.GRPC = l7.IsGRPC(ct)
	}
}

// Route returns the route the request matches, resolving it once and
// caching it until ClearRouteCache.
func (s *Stream) Route() Route {
	if !s.resolved {
		s.resolved = true
		if s.resolver != nil {
			s.route = s.resolver.Resolve(s)
		}
	}
	return s.route
}

// OnEnd registers fn to run when the stream ends, after the response is
// written (or the stream fails): timers and contexts that must cover the
// response body are released there.
func (s *Stream) OnEnd(fn func()) { s.onEnd = append(s.onEnd, fn) }

// End runs the OnEnd functions, last registered first. The connection
// manager calls it once per stream.
func (s *Stream) End() {
	for i := len(s.onEnd) - 1; i >= 0; i-- {
		s.onEnd[i]()
	}
	s.onEnd = s.onEnd[:0]
}

// ClearRouteCache makes the next Route call match again; call it after
// changing what routing looks at (path, headers).
func (s *Stream) ClearRouteCache() {
	s.resolved = false
	s.route = nil
}

// SendLocalReply answers the stream with status and body and returns Stop.
// flag is the response flag telemetry records for the reply (0 for none),
// e.g. FlagUAEX for an authorization denial, FlagRL for a rate limit; it
// is kept in the reply's Flag. A reply that replaces an earlier local
// reply (the connection manager's timeout reply after the chain's answer
// to the error its end caused) takes the earlier one's flag away with it;
// flags added otherwise (AddResponseFlag: a retry's URX) stay.
func (s *Stream) SendLocalReply(status int, body string, flag Flags) Status {
	if s.Local != nil {
		s.ResponseFlags &^= s.Local.Flag
	}
	s.local = LocalReply{Status: status, Body: body, Flag: flag}
	s.Local = &s.local
	s.Response = nil
	s.ResponseFlags |= flag
	return Stop
}

// AddResponseFlag records Envoy response flags (FlagURX, FlagDI...).
func (s *Stream) AddResponseFlag(f Flags) { s.ResponseFlags |= f }

// SetMetadataString sets a string value of the stream's dynamic metadata,
// Envoy's per-request namespace of values one filter leaves for the next
// (the RBAC filter's shadow_effective_policy_id, which ext_authz's
// filter_enabled_metadata reads): key in the namespace filter (a filter's
// name). It is the cheap form of SetDynamicMetadata for one string: a
// stream that sets none pays nothing, and the storage is reused by Init.
func (s *Stream) SetMetadataString(filter, key, value string) {
	for i := range s.strMeta {
		if m := &s.strMeta[i]; m.filter == filter && m.key == key {
			m.value = value
			return
		}
	}
	s.strMeta = append(s.strMeta, metadataEntry{filter, key, value})
}

// MetadataString returns the string under filter and key: the value
// SetMetadataString set, else a string field of the Struct
// SetDynamicMetadata set for filter; false when neither has one. It does
// not allocate.
func (s *Stream) MetadataString(filter, key string) (string, bool) {
	for i := range s.strMeta {
		if m := &s.strMeta[i]; m.filter == filter && m.key == key {
			return m.value, true
		}
	}
	if st := s.metadata[filter]; st != nil {
		if v, ok := st.GetFields()[key]; ok {
			if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
				return sv.StringValue, true
			}
		}
	}
	return "", false
}

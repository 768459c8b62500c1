// Package extauthz is Envoy's external authorization HTTP filter,
// envoy.filters.http.ext_authz, as istiod writes it for an
// AuthorizationPolicy with action CUSTOM: before the request goes on, the
// filter asks an authorization service, over gRPC
// (envoy.service.auth.v3.Authorization/Check, grpc_service.envoy_grpc) or
// plain HTTP (http_service), through the stream's Upstream to the
// service's cluster. The service allows (its headers go upstream), denies
// (its status, headers and body are relayed to the caller, flag UAEX), or
// fails (unreachable, timed out, a 5xx or a gRPC error): then
// status_on_error (403 by default) answers, unless failure_mode_allow lets
// the request through.
//
// Istio selects the requests to check with filter_enabled_metadata: the
// RBAC filter before this one evaluates the CUSTOM policy's rules as
// shadow rules and leaves the matched policy's name in the stream's
// dynamic metadata (envoy.filters.http.rbac,
// istio_ext_authz_shadow_effective_policy_id); a request whose name does
// not match is not checked. ExtAuthzPerRoute turns the filter off for a
// route (disabled) or adds context_extensions. A request reaching neither
// a check nor a per-route config costs a map lookup and nothing more.
package extauthz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// Name and TypeURL identify the filter in an HttpConnectionManager.
const (
	Name            = "envoy.filters.http.ext_authz"
	TypeURL         = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	PerRouteTypeURL = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
)

// DefaultTimeout bounds a check when the config gives no timeout (Envoy's
// default for ext_authz: 200ms).
const DefaultTimeout = 200 * time.Millisecond

// Response code details of the filter's local replies, Envoy's words.
const (
	DetailsDenied = "ext_authz_denied"
	DetailsError  = "ext_authz_error"
)

// HeaderFailureModeAllowed marks a request let through by
// failure_mode_allow when failure_mode_allow_header_add is set.
const HeaderFailureModeAllowed = "x-envoy-auth-failure-mode-allowed"

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz": pbcheck.F("grpc_service", "http_service",
		"transport_api_version", "failure_mode_allow", "failure_mode_allow_header_add", "with_request_body",
		"status_on_error", "filter_enabled_metadata", "stat_prefix", "allowed_headers", "disallowed_headers",
		"clear_route_cache"),
	"envoy.config.core.v3.GrpcService":           pbcheck.F("envoy_grpc", "timeout", "initial_metadata"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc": pbcheck.F("cluster_name", "authority"),
	"envoy.config.core.v3.HeaderValue":           pbcheck.F("key", "value"),
	"envoy.extensions.filters.http.ext_authz.v3.HttpService": pbcheck.F("server_uri", "path_prefix",
		"authorization_request", "authorization_response"),
	"envoy.config.core.v3.HttpUri":                                    pbcheck.F("uri", "cluster", "timeout"),
	"envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest": pbcheck.F("allowed_headers", "headers_to_add"),
	"envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse": pbcheck.F("allowed_upstream_headers",
		"allowed_upstream_headers_to_append", "allowed_client_headers"),
	"envoy.type.matcher.v3.ListStringMatcher":                     pbcheck.F("patterns*"), // compiled, which checks them
	"envoy.extensions.filters.http.ext_authz.v3.BufferSettings":   pbcheck.F("max_request_bytes", "allow_partial_message", "pack_as_bytes"),
	"envoy.type.v3.HttpStatus":                                    pbcheck.F("code"),
	"envoy.type.matcher.v3.MetadataMatcher":                       pbcheck.F("filter", "path", "value", "invert"),
	"envoy.type.matcher.v3.MetadataMatcher.PathSegment":           pbcheck.F("key"),
	"envoy.type.matcher.v3.ValueMatcher":                          pbcheck.F("string_match*", "present_match"),
	"envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute": pbcheck.F("disabled", "check_settings"),
	"envoy.extensions.filters.http.ext_authz.v3.CheckSettings": pbcheck.F("context_extensions",
		"disable_request_body_buffering", "with_request_body"),
}

// New builds the filter from an ExtAuthz config.
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Filter, error) {
	pb, ok := cfg.(*extauthzv3.ExtAuthz)
	if !ok {
		return nil, fmt.Errorf("%s: config is %T, want ExtAuthz", Name, cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	name := ctx.Name
	if name == "" {
		name = Name
	}
	f := &Filter{name: name, fallback: ctx.Upstream, log: ctx.Logger, failureModeAllow: pb.GetFailureModeAllow(),
		failureModeAllowHeaderAdd: pb.GetFailureModeAllowHeaderAdd(), statusOnError: 403,
		clearRouteCache: pb.GetClearRouteCache()}
	if pb.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		return nil, pbcheck.ErrAt("transport_api_version", "%v is not supported: V3 only", pb.GetTransportApiVersion())
	}
	if c := pb.GetStatusOnError().GetCode(); c != 0 {
		f.statusOnError = int(c)
	}
	var err error
	if f.allowed, err = compileList(pb.GetAllowedHeaders()); err != nil {
		return nil, pbcheck.At("allowed_headers", err)
	}
	if f.disallowed, err = compileList(pb.GetDisallowedHeaders()); err != nil {
		return nil, pbcheck.At("disallowed_headers", err)
	}
	if f.body, err = bufferSettings(pb.GetWithRequestBody()); err != nil {
		return nil, pbcheck.At("with_request_body", err)
	}
	if m := pb.GetFilterEnabledMetadata(); m != nil {
		if f.enabled, err = compileMetadata(m); err != nil {
			return nil, pbcheck.At("filter_enabled_metadata", err)
		}
	}
	switch {
	case pb.GetGrpcService() != nil:
		err = pbcheck.At("grpc_service", f.grpcConfig(pb.GetGrpcService()))
	case pb.GetHttpService() != nil:
		err = pbcheck.At("http_service", f.httpConfig(pb.GetHttpService(), pb.GetAllowedHeaders() != nil))
	default:
		err = fmt.Errorf("%s: one of grpc_service or http_service is required", Name)
	}
	if err != nil {
		return nil, err
	}
	if f.stats, err = newCounters(ctx.Stats, "http", pb.GetStatPrefix()); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Filter) grpcConfig(g *corev3.GrpcService) error {
	var err error
	f.svc, err = newGRPCService(g)
	f.grpc, f.timeout = true, f.svc.timeout
	return err
}

func (f *Filter) httpConfig(h *extauthzv3.HttpService, topAllowed bool) error {
	u := h.GetServerUri()
	if u.GetCluster() == "" {
		return pbcheck.ErrAt("server_uri.cluster", "required")
	}
	f.cluster, f.pathPrefix = u.GetCluster(), h.GetPathPrefix()
	var err error
	if f.timeout, err = pbcheck.Duration(u.GetTimeout(), DefaultTimeout); err != nil {
		return pbcheck.At("server_uri.timeout", err)
	}
	if f.pathPrefix != "" && f.pathPrefix[0] != '/' {
		return pbcheck.ErrAt("path_prefix", "%q does not start with /", f.pathPrefix)
	}
	if ar := h.GetAuthorizationRequest(); ar != nil {
		if ar.GetAllowedHeaders() != nil && !topAllowed {
			if f.allowed, err = compileList(ar.GetAllowedHeaders()); err != nil {
				return pbcheck.At("authorization_request.allowed_headers", err)
			}
		}
		for _, hv := range ar.GetHeadersToAdd() {
			f.headersToAdd = append(f.headersToAdd, kv{hv.GetKey(), hv.GetValue()})
		}
	}
	ar := h.GetAuthorizationResponse()
	if f.upstream, err = compileList(ar.GetAllowedUpstreamHeaders()); err != nil {
		return pbcheck.At("authorization_response.allowed_upstream_headers", err)
	}
	if f.upstreamAppend, err = compileList(ar.GetAllowedUpstreamHeadersToAppend()); err != nil {
		return pbcheck.At("authorization_response.allowed_upstream_headers_to_append", err)
	}
	if f.client, err = compileList(ar.GetAllowedClientHeaders()); err != nil {
		return pbcheck.At("authorization_response.allowed_client_headers", err)
	}
	return nil
}

// ParsePerRoute decodes a route's ExtAuthzPerRoute.
func (factory) ParsePerRoute(ctx filters.BuildContext, cfg proto.Message) (any, error) {
	pb, ok := cfg.(*extauthzv3.ExtAuthzPerRoute)
	if !ok {
		return nil, fmt.Errorf("%s: per-route config is %T, want ExtAuthzPerRoute", Name, cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if _, ok := pb.GetOverride().(*extauthzv3.ExtAuthzPerRoute_Disabled); ok {
		if !pb.GetDisabled() {
			return nil, pbcheck.ErrAt("disabled", "false is not a valid override")
		}
		return &PerRoute{Disabled: true}, nil
	}
	cs := pb.GetCheckSettings()
	if cs == nil {
		return nil, fmt.Errorf("%s: per-route config needs disabled or check_settings", Name)
	}
	r := &PerRoute{ContextExtensions: cs.GetContextExtensions(), NoBody: cs.GetDisableRequestBodyBuffering()}
	var err error
	if r.Body, err = bufferSettings(cs.GetWithRequestBody()); err != nil {
		return nil, pbcheck.At("check_settings.with_request_body", err)
	}
	if r.NoBody && r.Body != nil {
		return nil, pbcheck.ErrAt("check_settings", "disable_request_body_buffering and with_request_body are exclusive")
	}
	return r, nil
}

// PerRoute is a route's ExtAuthzPerRoute: Disabled turns the check off;
// otherwise ContextExtensions go in the gRPC check request, and NoBody or
// Body replace the filter's with_request_body.
type PerRoute struct {
	Disabled          bool
	ContextExtensions map[string]string
	NoBody            bool
	Body              *BodySettings
}

// BodySettings is with_request_body: how much of the request body goes in
// the check (MaxBytes), whether a longer body is checked on its first
// MaxBytes (Partial) or refused with a 413, and whether the gRPC check
// carries it as raw_body (AsBytes) rather than body.
type BodySettings struct {
	MaxBytes int
	Partial  bool
	AsBytes  bool
}

func bufferSettings(b *extauthzv3.BufferSettings) (*BodySettings, error) {
	if b == nil {
		return nil, nil
	}
	if b.GetMaxRequestBytes() == 0 {
		return nil, pbcheck.ErrAt("max_request_bytes", "must be greater than 0")
	}
	return &BodySettings{MaxBytes: int(b.GetMaxRequestBytes()), Partial: b.GetAllowPartialMessage(), AsBytes: b.GetPackAsBytes()}, nil
}

// kv is a header to add.
type kv struct{ key, value string }

// listMatcher is a compiled ListStringMatcher: a name matches when any
// pattern does. nil matches nothing.
type listMatcher []*route.StringMatcher

func compileList(pb *matcherv3.ListStringMatcher) (listMatcher, error) {
	if pb == nil {
		return nil, nil
	}
	l := make(listMatcher, 0, len(pb.GetPatterns()))
	for i, p := range pb.GetPatterns() {
		m, err := route.CompileStringMatcher(p)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("patterns", i), err)
		}
		l = append(l, m)
	}
	return l, nil
}

func (l listMatcher) match(name []byte) bool {
	for _, m := range l {
		if m.Match(name) {
			return true
		}
	}
	return false
}

// metadataMatcher is a compiled filter_enabled_metadata over the stream's
// dynamic metadata: one key under a filter's namespace, its string value
// matched (or present).
type metadataMatcher struct {
	filter, key string
	value       *route.StringMatcher // nil: present_match
	invert      bool
}

func compileMetadata(m *matcherv3.MetadataMatcher) (*metadataMatcher, error) {
	if len(m.GetPath()) != 1 {
		return nil, pbcheck.ErrAt("path", "%d segments: only one key is supported", len(m.GetPath()))
	}
	mm := &metadataMatcher{filter: m.GetFilter(), key: m.GetPath()[0].GetKey(), invert: m.GetInvert()}
	switch v := m.GetValue(); {
	case v.GetStringMatch() != nil:
		sm, err := route.CompileStringMatcher(v.GetStringMatch())
		if err != nil {
			return nil, pbcheck.At("value.string_match", err)
		}
		mm.value = sm
	case v.GetPresentMatch():
	default:
		return nil, pbcheck.ErrAt("value", "only string_match and present_match are supported")
	}
	return mm, nil
}

// Metadata is where filter_enabled_metadata looks: a stream's dynamic
// metadata, or a connection's.
type Metadata interface {
	MetadataString(filter, key string) (string, bool)
}

func (m *metadataMatcher) match(s Metadata) bool {
	v, ok := s.MetadataString(m.filter, m.key)
	matched := ok && (m.value == nil || m.value.MatchString(v))
	return matched != m.invert
}

// counters are Envoy's ext_authz statistics (<stat_prefix>ext_authz.ok,
// denied, error, failure_mode_allowed, disabled), here
// envoy_<kind>_ext_authz_<name> labelled with the stat prefix; kind is
// "http" for the HTTP filter, "tcp" for the network filter.
type counters struct {
	ok, denied, error, failureModeAllowed, disabled prometheus.Counter
}

func newCounters(scope filters.Scope, kind, prefix string) (counters, error) {
	var c counters
	err := scope.Counters("envoy_"+kind+"_ext_authz_", "prefix", prefix,
		filters.StatCounter{Name: "ok", Help: "Requests the external authorization service allowed.", Dst: &c.ok},
		filters.StatCounter{Name: "denied", Help: "Requests the external authorization service denied.", Dst: &c.denied},
		filters.StatCounter{Name: "error", Help: "Checks that failed (the service unreachable, timed out, or answering an error).", Dst: &c.error},
		filters.StatCounter{Name: "failure_mode_allowed", Help: "Failed checks let through by failure_mode_allow.", Dst: &c.failureModeAllowed},
		filters.StatCounter{Name: "disabled", Help: "Requests not checked: the filter disabled for them.", Dst: &c.disabled})
	return c, err
}

// Filter is the ext_authz filter. Built once per chain and shared by its
// streams; read-only after New.
type Filter struct {
	name     string           // the filter's name in the config, for per-route lookups
	log      *slog.Logger     // nil in tests
	fallback filters.Upstream // the BuildContext's, for a stream without one

	grpc         bool
	svc          grpcService   // gRPC service
	timeout      time.Duration // of a check
	cluster      string        // HTTP service
	pathPrefix   string        // HTTP service
	headersToAdd []kv          // HTTP service: added to the check request

	allowed, disallowed      listMatcher // request headers in the check (nil allowed: gRPC all, HTTP the defaults)
	upstream, upstreamAppend listMatcher // HTTP: the service's headers set / appended upstream on OK
	client                   listMatcher // HTTP: the service's headers relayed on a denial (nil: all)

	failureModeAllow, failureModeAllowHeaderAdd bool
	statusOnError                               int
	body                                        *BodySettings
	enabled                                     *metadataMatcher
	clearRouteCache                             bool
	stats                                       counters
}

// decision is what a check returned.
type decision struct {
	kind   int // ok, denied, or failed
	status int
	body   string
	// setHeaders and appendHeaders go on the request upstream (OK);
	// removeHeaders are removed from it; clientHeaders go on the denial.
	setHeaders, appendHeaders, clientHeaders []kv
	removeHeaders                            []string
}

const (
	kindOK = iota
	kindDenied
	kindFailed
)

// OnRequest checks the request, unless the route turns the filter off or
// filter_enabled_metadata does not select it.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	var pr *PerRoute
	if r := s.Route(); r != nil {
		pr, _ = r.FilterConfig(f.name).(*PerRoute)
	}
	if pr != nil && pr.Disabled {
		f.stats.disabled.Inc()
		return filters.Continue
	}
	if f.enabled != nil && !f.enabled.match(s) {
		f.stats.disabled.Inc()
		return filters.Continue
	}
	body := f.body
	if pr != nil && pr.NoBody {
		body = nil
	} else if pr != nil && pr.Body != nil {
		body = pr.Body
	}
	var buffered []byte
	if body != nil && s.Request.Body != nil {
		var tooLarge bool
		buffered, tooLarge = bufferBody(s, body)
		if tooLarge {
			return s.SendLocalReply(413, "Payload Too Large", 0)
		}
	}
	var d decision
	var err error
	ctx, cancel := context.WithTimeout(s.Context, f.timeout)
	if f.grpc {
		d, err = f.checkGRPC(ctx, s, pr, buffered, body)
	} else {
		d, err = f.checkHTTP(ctx, s, buffered)
	}
	cancel()
	if err != nil {
		d.kind = kindFailed
	}
	switch d.kind {
	case kindOK:
		f.stats.ok.Inc()
		for _, h := range d.removeHeaders {
			s.Request.Header.Del(h)
		}
		for _, h := range d.setHeaders {
			s.Request.Header.Set(h.key, h.value)
		}
		for _, h := range d.appendHeaders {
			s.Request.Header.Add(h.key, h.value)
		}
		if f.clearRouteCache && len(d.setHeaders)+len(d.appendHeaders)+len(d.removeHeaders) > 0 {
			s.ClearRouteCache()
		}
		return filters.Continue
	case kindDenied:
		f.stats.denied.Inc()
		s.SendLocalReply(d.status, d.body, filters.FlagUAEX)
		for _, h := range d.clientHeaders {
			s.Local.Header.Add(h.key, h.value)
		}
		s.ResponseCodeDetails = DetailsDenied
		return filters.Stop
	}
	f.stats.error.Inc()
	if f.log != nil {
		f.log.Debug("ext_authz check failed", "cluster", f.svc.cluster+f.cluster, "error", err)
	}
	if f.failureModeAllow {
		f.stats.failureModeAllowed.Inc()
		if f.failureModeAllowHeaderAdd {
			s.Request.Header.Set(HeaderFailureModeAllowed, "true")
		}
		return filters.Continue
	}
	s.SendLocalReply(f.statusOnError, "", filters.FlagUAEX)
	s.ResponseCodeDetails = DetailsError
	return filters.Stop
}

// bufferBody reads up to b.MaxBytes of the request body for the check and
// puts them back in front of the rest; tooLarge when the body is longer
// and a partial body is not allowed (Envoy answers 413).
func bufferBody(s *filters.Stream, b *BodySettings) (buf []byte, tooLarge bool) {
	req := s.Request
	if req.ContentLength > int64(b.MaxBytes) && !b.Partial {
		return nil, true
	}
	buf = make([]byte, b.MaxBytes+1)
	n, err := io.ReadFull(req.Body, buf)
	buf = buf[:n]
	rest := req.Body
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		rest = eofReader{}
		// The body ended: a reader returning io.EOF again keeps the
		// trailers the codec filled.
	} else if err != nil {
		// Let the router see the failure.
		req.Body = io.MultiReader(bytes.NewReader(buf), errReader{err})
		return buf, false
	}
	if n > b.MaxBytes {
		if !b.Partial {
			return nil, true
		}
		req.Body = io.MultiReader(bytes.NewReader(buf), rest)
		return buf[:b.MaxBytes], false
	}
	req.Body = bytes.NewReader(buf)
	if _, isEOF := rest.(eofReader); !isEOF {
		req.Body = io.MultiReader(bytes.NewReader(buf), rest)
	}
	return buf, false
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// upstreamOf is the Upstream a stream's check goes through: the stream's
// own (its config's clusters), else the BuildContext's.
func (f *Filter) upstreamOf(s *filters.Stream) filters.Upstream {
	if s.Upstream != nil {
		return s.Upstream
	}
	return f.fallback
}

// requestHeaderAllowed says whether a request header goes in the check:
// the allowed list (all when there is none) minus the disallowed.
func (f *Filter) requestHeaderAllowed(name []byte) bool {
	if f.disallowed.match(name) {
		return false
	}
	return f.allowed == nil || f.allowed.match(name)
}

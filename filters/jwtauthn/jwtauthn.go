// Package jwtauthn is Envoy's JWT authentication filter
// (envoy.filters.http.jwt_authn), as istiod renders a RequestAuthentication:
// it finds the request's JWTs (headers with a value prefix, query
// parameters, cookies), verifies each against its provider (issuer,
// exp/nbf with a clock skew, audiences, signature with the provider's
// JWKS, inline or fetched from a cluster), and answers 401 (403 for an
// audience not allowed) with Envoy's message and WWW-Authenticate when the
// route's requirement is not met. A verified token's payload goes to the
// stream's dynamic metadata under "envoy.filters.http.jwt_authn" (RBAC's
// metadata rules read request.auth.claims there), and optionally to
// headers; the token is removed unless forward is set.
//
// Signatures are checked with github.com/go-jose/go-jose/v4: maintained,
// small, with no dependency beyond the standard library, already in the
// module graph (the OpenTelemetry and gRPC modules pull it), and it verifies
// every algorithm Envoy's jwt_verify_lib does (RS, PS, ES, HS and EdDSA)
// from JWKS documents. Parsing the token's header and claims is done here,
// so that each failure gets jwt_verify_lib's status and message.
//
// A route whose rules ask for no JWT costs a rule match and nothing else.
// Not implemented, and refused by name: filter_state_rules,
// extract_only_without_validation, subjects, max_lifetime,
// failed_status_in_metadata, claim_path, remote_jwks' retry_policy and
// DataSource files. jwt_cache_config is taken and has no effect: every token
// is verified.
package jwtauthn

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// Name and TypeURL identify the filter; PerRouteTypeURL its per-route
// config.
const (
	Name            = "envoy.filters.http.jwt_authn"
	TypeURL         = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	PerRouteTypeURL = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
)

// Envoy's defaults.
const (
	defaultCacheDuration  = 10 * time.Minute
	defaultRefetch        = time.Second
	defaultClockSkew      = 60 // seconds
	defaultRemoteTimeout  = time.Second
	maxRealmPathLength    = 256
	corsRequestMethod     = "access-control-request-method"
	wwwAuthenticate       = "www-authenticate"
	invalidTokenParameter = `, error="invalid_token"`
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL, PerRouteTypeURL} }

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication": pbcheck.F("providers", "rules", "bypass_cors_preflight",
		"requirement_map", "strip_failure_response", "stat_prefix"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtProvider": pbcheck.F("issuer", "audiences", "require_expiration", "forward",
		"from_headers", "from_params", "from_cookies", "forward_payload_header", "pad_forward_payload_header", "payload_in_metadata",
		"normalize_payload_in_metadata", "header_in_metadata", "clock_skew_seconds", "jwt_cache_config*", "claim_to_headers",
		"clear_route_cache", "remote_jwks", "local_jwks"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtProvider.NormalizePayload": pbcheck.F("space_delimited_claims"),
	"envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks":                   pbcheck.F("http_uri", "cache_duration", "async_fetch"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwksAsyncFetch":               pbcheck.F("fast_listener", "failed_refetch_duration"),
	"envoy.config.core.v3.HttpUri":                                            pbcheck.F("uri", "cluster", "timeout"),
	"envoy.config.core.v3.DataSource":                                         pbcheck.F("inline_string", "inline_bytes"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtHeader":                    pbcheck.F("name", "value_prefix"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtClaimToHeader":             pbcheck.F("header_name", "claim_name"),
	"envoy.extensions.filters.http.jwt_authn.v3.RequirementRule":              pbcheck.F("match*", "requires", "requirement_name"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement": pbcheck.F("provider_name", "provider_and_audiences",
		"requires_any", "requires_all", "allow_missing_or_failed", "allow_missing"),
	"envoy.extensions.filters.http.jwt_authn.v3.ProviderWithAudiences": pbcheck.F("provider_name", "audiences"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementOrList":  pbcheck.F("requirements"),
	"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementAndList": pbcheck.F("requirements"),
	"envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig":        pbcheck.F("disabled", "requirement_name"),
}

// Filter is the JWT authentication filter. Built once per chain and shared
// by its streams; read-only after New but for its remote keys' caches.
type Filter struct {
	providers    []*provider // in name order
	allLocations []location  // every provider's, each once
	rules        []rule
	reqMap       map[string]*requirement
	reqNames     string // the requirement_map's names, sorted, joined by ","
	bypassCORS   bool
	strip        bool
	remotes      []*remoteJWKS

	allowed, denied prometheus.Counter
}

type rule struct {
	match *route.RouteMatch
	req   *requirement // nil: the route needs no JWT
}

// perRoute is a compiled PerRouteConfig.
type perRoute struct {
	disabled bool
	name     string
}

// ParsePerRoute decodes a route's PerRouteConfig: disabled, or the name of
// a requirement of the filter's requirement_map (checked per request, as
// Envoy does: an unknown name is answered 403).
func (factory) ParsePerRoute(_ filters.BuildContext, cfg proto.Message) (any, error) {
	pb, ok := cfg.(*jwtv3.PerRouteConfig)
	if !ok {
		return nil, fmt.Errorf("%s: per-route config must be a PerRouteConfig, not %T", Name, cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	switch pb.GetRequirementSpecifier().(type) {
	case *jwtv3.PerRouteConfig_Disabled:
		if !pb.GetDisabled() {
			return nil, pbcheck.ErrAt("disabled", "must be true")
		}
		return &perRoute{disabled: true}, nil
	case *jwtv3.PerRouteConfig_RequirementName:
		if pb.GetRequirementName() == "" {
			return nil, pbcheck.ErrAt("requirement_name", "must not be empty")
		}
		return &perRoute{name: pb.GetRequirementName()}, nil
	}
	return nil, errors.New("one of disabled or requirement_name is required")
}

// New compiles a JwtAuthentication. Local JWKS are parsed here; remote
// ones are fetched when first needed, or from now on in the background
// with async_fetch (stopped by Close).
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Filter, error) {
	pb, ok := cfg.(*jwtv3.JwtAuthentication)
	if !ok {
		return nil, fmt.Errorf("%s: config must be a JwtAuthentication, not %T", Name, cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	f := &Filter{bypassCORS: pb.GetBypassCorsPreflight(), strip: pb.GetStripFailureResponse()}
	ok = false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	names := make([]string, 0, len(pb.GetProviders()))
	for n := range pb.GetProviders() {
		names = append(names, n)
	}
	sort.Strings(names)
	byName := map[string]*provider{}
	for _, n := range names {
		p, err := f.compileProvider(ctx, n, pb.GetProviders()[n])
		if err != nil {
			return nil, pbcheck.At(pbcheck.Key("providers", n), err)
		}
		byName[n] = p
		f.providers = append(f.providers, p)
		for _, l := range p.locations {
			if !containsLoc(f.allLocations, l) {
				f.allLocations = append(f.allLocations, l)
			}
		}
	}
	f.reqMap = map[string]*requirement{}
	var reqNames []string
	for n, r := range pb.GetRequirementMap() {
		c, err := compileRequirement(r, byName)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Key("requirement_map", n), err)
		}
		f.reqMap[n] = c
		reqNames = append(reqNames, n)
	}
	sort.Strings(reqNames)
	f.reqNames = strings.Join(reqNames, ",")
	for i, r := range pb.GetRules() {
		c, err := f.compileRule(r, byName)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("rules", i), err)
		}
		f.rules = append(f.rules, c)
	}
	var err error
	if f.allowed, err = ctx.Stats.Counter(prometheus.CounterOpts{Name: "jwt_authn_allowed_total",
		Help: "Requests the JWT authentication filter let through."}); err != nil {
		return nil, err
	}
	if f.denied, err = ctx.Stats.Counter(prometheus.CounterOpts{Name: "jwt_authn_denied_total",
		Help: "Requests the JWT authentication filter answered 401 or 403."}); err != nil {
		return nil, err
	}
	for _, r := range f.remotes {
		if r.async && ctx.Upstream != nil {
			r.start(ctx.Upstream)
		}
	}
	ok = true
	return f, nil
}

func containsLoc(ls []location, l location) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

func (f *Filter) compileProvider(ctx filters.BuildContext, name string, pb *jwtv3.JwtProvider) (*provider, error) {
	p := &provider{
		name:                 name,
		issuer:               pb.GetIssuer(),
		requireExp:           pb.GetRequireExpiration(),
		clockSkew:            defaultClockSkew,
		forward:              pb.GetForward(),
		forwardPayloadHeader: strings.ToLower(pb.GetForwardPayloadHeader()),
		padPayload:           pb.GetPadForwardPayloadHeader(),
		payloadInMetadata:    pb.GetPayloadInMetadata(),
		headerInMetadata:     pb.GetHeaderInMetadata(),
		spaceDelimited:       pb.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(),
		clearRouteCache:      pb.GetClearRouteCache(),
	}
	if s := pb.GetClockSkewSeconds(); s > 0 {
		p.clockSkew = float64(s)
	}
	for _, a := range pb.GetAudiences() {
		p.audiences = append(p.audiences, normalizeAudience(a))
	}
	for i, h := range pb.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, pbcheck.ErrAt(pbcheck.Idx("from_headers", i)+".name", "required")
		}
		p.locations = append(p.locations, location{kind: locHeader, name: strings.ToLower(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for _, q := range pb.GetFromParams() {
		p.locations = append(p.locations, location{kind: locParam, name: q})
	}
	for _, c := range pb.GetFromCookies() {
		p.locations = append(p.locations, location{kind: locCookie, name: c})
	}
	if len(p.locations) == 0 {
		p.locations = defaultLocations
	}
	for i, c := range pb.GetClaimToHeaders() {
		if c.GetHeaderName() == "" || c.GetClaimName() == "" {
			return nil, pbcheck.ErrAt(pbcheck.Idx("claim_to_headers", i), "header_name and claim_name are required")
		}
		p.claimToHeaders = append(p.claimToHeaders, claimHeader{header: strings.ToLower(c.GetHeaderName()), path: strings.Split(c.GetClaimName(), ".")})
	}
	switch src := pb.GetJwksSourceSpecifier().(type) {
	case *jwtv3.JwtProvider_LocalJwks:
		var doc []byte
		switch d := src.LocalJwks.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			doc = []byte(d.InlineString)
		case *corev3.DataSource_InlineBytes:
			doc = d.InlineBytes
		default:
			return nil, pbcheck.ErrAt("local_jwks", "one of inline_string or inline_bytes is required")
		}
		if p.local = parseJWKS(doc); p.local == nil && ctx.Logger != nil {
			// Envoy takes the config and fails the provider's tokens.
			ctx.Logger.Warn("local_jwks has no valid key: its tokens will be refused", "provider", name)
		}
	case *jwtv3.JwtProvider_RemoteJwks:
		r, err := newRemote(ctx, src.RemoteJwks)
		if err != nil {
			return nil, pbcheck.At("remote_jwks", err)
		}
		p.remote = r
		f.remotes = append(f.remotes, r)
	default:
		return nil, errors.New("one of remote_jwks or local_jwks is required")
	}
	return p, nil
}

func newRemote(ctx filters.BuildContext, pb *jwtv3.RemoteJwks) (*remoteJWKS, error) {
	hu := pb.GetHttpUri()
	u, err := url.Parse(hu.GetUri())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, pbcheck.ErrAt("http_uri.uri", "%q is not an http or https URI", hu.GetUri())
	}
	if hu.GetCluster() == "" {
		return nil, pbcheck.ErrAt("http_uri.cluster", "required")
	}
	r := &remoteJWKS{
		uri: u, cluster: hu.GetCluster(), timeout: defaultRemoteTimeout, cacheDuration: defaultCacheDuration,
		refetch: defaultRefetch, logger: ctx.Logger,
	}
	if r.logger == nil {
		r.logger = discardLogger
	}
	if t := hu.GetTimeout(); t != nil && t.AsDuration() > 0 {
		r.timeout = t.AsDuration()
	}
	if d := pb.GetCacheDuration(); d != nil && d.AsDuration() > 0 {
		r.cacheDuration = d.AsDuration()
	}
	if a := pb.GetAsyncFetch(); a != nil {
		r.async = true
		if d := a.GetFailedRefetchDuration(); d != nil && d.AsDuration() > 0 {
			r.refetch = d.AsDuration()
		}
	}
	return r, nil
}

func (f *Filter) compileRule(pb *jwtv3.RequirementRule, byName map[string]*provider) (rule, error) {
	var r rule
	if pb.GetMatch() == nil {
		return r, pbcheck.ErrAt("match", "required")
	}
	m, err := route.CompileRouteMatch(pb.GetMatch())
	if err != nil {
		return r, pbcheck.At("match", err)
	}
	r.match = m
	switch t := pb.GetRequirementType().(type) {
	case *jwtv3.RequirementRule_Requires:
		if r.req, err = compileRequirement(t.Requires, byName); err != nil {
			return r, pbcheck.At("requires", err)
		}
	case *jwtv3.RequirementRule_RequirementName:
		if r.req = f.reqMap[t.RequirementName]; r.req == nil {
			return r, pbcheck.ErrAt("requirement_name", "Wrong requirement_name: %s. It should be one of [%s]", t.RequirementName, f.reqNames)
		}
	}
	return r, nil
}

// compileChildren compiles the requirements of a requires_any or
// requires_all (at path), of which there must be 2 or more.
func compileChildren(pbs []*jwtv3.JwtRequirement, byName map[string]*provider, path string) ([]*requirement, error) {
	var out []*requirement
	for i, c := range pbs {
		cc, err := compileRequirement(c, byName)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx(path, i), err)
		}
		out = append(out, cc)
	}
	if len(out) < 2 {
		return nil, pbcheck.ErrAt(path, "at least 2 are required")
	}
	return out, nil
}

func compileRequirement(pb *jwtv3.JwtRequirement, byName map[string]*provider) (*requirement, error) {
	r := &requirement{}
	var err error
	switch t := pb.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		r.kind, r.provider = reqProvider, byName[t.ProviderName]
		if r.provider == nil {
			return nil, pbcheck.ErrAt("provider_name", "no provider %q", t.ProviderName)
		}
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		n := t.ProviderAndAudiences.GetProviderName()
		r.kind, r.provider = reqProvider, byName[n]
		if r.provider == nil {
			return nil, pbcheck.ErrAt("provider_and_audiences.provider_name", "no provider %q", n)
		}
		r.audiences = []string{}
		for _, a := range t.ProviderAndAudiences.GetAudiences() {
			r.audiences = append(r.audiences, normalizeAudience(a))
		}
	case *jwtv3.JwtRequirement_RequiresAny:
		r.kind = reqAny
		if r.children, err = compileChildren(t.RequiresAny.GetRequirements(), byName, "requires_any.requirements"); err != nil {
			return nil, err
		}
	case *jwtv3.JwtRequirement_RequiresAll:
		r.kind = reqAll
		if r.children, err = compileChildren(t.RequiresAll.GetRequirements(), byName, "requires_all.requirements"); err != nil {
			return nil, err
		}
	case *jwtv3.JwtRequirement_AllowMissing:
		r.kind = reqAllowMissing
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		r.kind = reqAllowMissingOrFailed
	default:
		return nil, errors.New("a requirement is required")
	}
	return r, nil
}

// Close stops the background JWKS fetches. Streams still running keep the
// keys fetched so far (and fetch on demand through their own Upstream).
func (f *Filter) Close() error {
	for _, r := range f.remotes {
		r.close()
	}
	return nil
}

// OnRequest finds the route's requirement (its PerRouteConfig, else the
// first rule that matches) and verifies it.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	if f.bypassCORS && isCORSPreflight(s) {
		return filters.Continue
	}
	var req *requirement
	if rt := s.Route(); rt != nil {
		if pr, ok := rt.FilterConfig(Name).(*perRoute); ok {
			if pr.disabled {
				return filters.Continue
			}
			if req = f.reqMap[pr.name]; req == nil {
				msg := "Wrong requirement_name: " + pr.name + ". It should be one of [" + f.reqNames + "]"
				f.denied.Inc()
				body := "Failed JWT authentication: " + msg
				if f.strip {
					body = ""
				}
				s.SendLocalReply(403, body, 0)
				s.ResponseCodeDetails = "jwt_authn_access_denied{" + strings.ReplaceAll(msg, " ", "_") + "}"
				return filters.Stop
			}
		}
	}
	if req == nil {
		for i := range f.rules {
			if f.rules[i].match.Matches(s.Request) {
				req = f.rules[i].req
				break
			}
		}
	}
	if req == nil {
		return filters.Continue
	}
	st := f.verify(s, req)
	if st == statusOK {
		f.allowed.Inc()
		return filters.Continue
	}
	f.denied.Inc()
	if f.strip {
		s.SendLocalReply(st.httpStatus(), "", 0)
	} else {
		s.SendLocalReply(st.httpStatus(), st.String(), 0)
		v := `Bearer realm="` + originalURI(s) + `"`
		if st != statusMissing {
			v += invalidTokenParameter
		}
		s.Local.Header.Set(wwwAuthenticate, v)
	}
	s.ResponseCodeDetails = statusDetails[st]
	return filters.Stop
}

// isCORSPreflight: an OPTIONS with Origin and
// Access-Control-Request-Method.
func isCORSPreflight(s *filters.Stream) bool {
	h := &s.Request.Header
	return s.Request.Method == "OPTIONS" && len(h.GetString("origin")) > 0 && len(h.GetString(corsRequestMethod)) > 0
}

// originalURI is the realm Envoy names: x-forwarded-proto://host/path,
// the path cut at 256 bytes.
func originalURI(s *filters.Stream) string {
	scheme := s.Request.Header.GetString("x-forwarded-proto")
	if scheme == "" {
		scheme = s.Request.Scheme
	}
	if scheme == "" {
		scheme = "http"
	}
	p := s.Request.Path
	if len(p) > maxRealmPathLength {
		p = p[:maxRealmPathLength]
	}
	return scheme + "://" + string(s.Request.Authority) + string(p)
}

// Guard against a factory that does not implement PerRouteFactory.
var _ filters.PerRouteFactory = factory{}

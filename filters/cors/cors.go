// Package cors is Envoy's envoy.filters.http.cors: the filter itself takes
// no settings (istiod writes an empty Cors), and a route's
// typed_per_filter_config (a CorsPolicy, from a VirtualService's
// corsPolicy) says which origins may call it. For an allowed origin, a
// preflight (OPTIONS with access-control-request-method) is answered by the
// waypoint with the policy's access-control-allow-* headers; any other
// request goes on and its response gets access-control-allow-origin (and
// -credentials, -expose-headers). A request from an origin the policy does
// not allow passes through untouched, as in Envoy; a preflight from such an
// origin too, unless forward_not_matching_preflights is false (a
// VirtualService's unmatchedPreflights: IGNORE), when the waypoint answers
// it 200 with no CORS headers and no workload sees it.
package cors

import (
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Name is the filter's Envoy name, under which routes give their policy.
const Name = "envoy.filters.http.cors"

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string { return []string{Name} }
func (factory) TypeURLs() []string {
	return []string{"type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
		"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"}
}

var fields = pbcheck.F

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.cors.v3.Cors": fields(),
	"envoy.extensions.filters.http.cors.v3.CorsPolicy": fields("allow_origin_string_match", "allow_methods",
		"allow_headers", "expose_headers", "max_age", "allow_credentials", "filter_enabled",
		"forward_not_matching_preflights"),
	"envoy.type.matcher.v3.StringMatcher":           fields("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"envoy.type.matcher.v3.RegexMatcher":            fields("google_re2", "regex"),
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":  fields(),
	"envoy.config.core.v3.RuntimeFractionalPercent": fields("default_value", "runtime_key"),
	"envoy.type.v3.FractionalPercent":               fields("numerator", "denominator"),
}

// New takes the filter's own (empty) Cors config.
func (factory) New(_ filters.BuildContext, cfg proto.Message) (filter, error) {
	if cfg != nil {
		pb, ok := cfg.(*corsv3.Cors)
		if !ok {
			return filter{}, fmt.Errorf("cors: config is %T, want Cors", cfg)
		}
		if err := allowlist.Check(pb.ProtoReflect()); err != nil {
			return filter{}, err
		}
	}
	return filter{}, nil
}

// ParsePerRoute decodes a route's CorsPolicy. filter_enabled may be 0% or
// 100% (runtime keys are not read: the waypoint has no runtime).
func (factory) ParsePerRoute(_ filters.BuildContext, cfg proto.Message) (any, error) {
	pb, ok := cfg.(*corsv3.CorsPolicy)
	if !ok {
		return nil, fmt.Errorf("cors: per-route config is %T, want CorsPolicy", cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	p := &policy{enabled: true, allowMethods: pb.GetAllowMethods(), allowHeaders: pb.GetAllowHeaders(),
		exposeHeaders: pb.GetExposeHeaders(), maxAge: pb.GetMaxAge(), credentials: pb.GetAllowCredentials().GetValue(),
		forwardUnmatched: true}
	if f := pb.GetForwardNotMatchingPreflights(); f != nil {
		p.forwardUnmatched = f.GetValue()
	}
	if fe := pb.GetFilterEnabled(); fe != nil {
		on, err := allOrNothing(fe)
		if err != nil {
			return nil, fmt.Errorf("filter_enabled: %w", err)
		}
		p.enabled = on
	}
	for i, m := range pb.GetAllowOriginStringMatch() {
		om, err := compileOrigin(m)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d]: %w", i, err)
		}
		p.origins = append(p.origins, om)
	}
	return p, nil
}

func allOrNothing(fe *corev3.RuntimeFractionalPercent) (bool, error) {
	f, err := filters.DecodeFraction(fe.GetDefaultValue())
	switch {
	case err != nil:
		return false, pbcheck.At("default_value", err)
	case f.Numerator == 0:
		return false, nil
	case f.Numerator >= f.Denominator:
		return true, nil
	}
	return false, fmt.Errorf("only 0%% or 100%% is supported, got %d/%d", f.Numerator, f.Denominator)
}

// policy is a decoded CorsPolicy. Read-only.
type policy struct {
	enabled                                   bool
	origins                                   []originMatcher
	allowMethods, allowHeaders, exposeHeaders string
	maxAge                                    string
	credentials                               bool
	forwardUnmatched                          bool // a preflight from another origin goes upstream (Envoy's default)
}

type originMatcher struct {
	exact, prefix, suffix, contains string
	re                              *regexp.Regexp
	ignoreCase                      bool
}

func compileOrigin(m *matcherv3.StringMatcher) (originMatcher, error) {
	o := originMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		o.exact = p.Exact
	case *matcherv3.StringMatcher_Prefix:
		o.prefix = p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		o.suffix = p.Suffix
	case *matcherv3.StringMatcher_Contains:
		o.contains = p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return o, err
		}
		o.re = re
	default:
		return o, fmt.Errorf("a match pattern is required")
	}
	return o, nil
}

func (o *originMatcher) match(v string) bool {
	if o.re != nil {
		return o.re.MatchString(v)
	}
	pat := o.exact + o.prefix + o.suffix + o.contains
	if o.ignoreCase {
		v, pat = strings.ToLower(v), strings.ToLower(pat)
	}
	switch {
	case o.exact != "":
		return v == pat
	case o.prefix != "":
		return strings.HasPrefix(v, pat)
	case o.suffix != "":
		return strings.HasSuffix(v, pat)
	}
	return strings.Contains(v, pat)
}

// filter keeps nothing per stream: the response side looks at the request
// again.
type filter struct{}

// policyFor returns the route's policy and the allowed origin, or nil.
func policyFor(s *filters.Stream) (*policy, string) {
	p, origin, allowed := routePolicy(s)
	if !allowed {
		return nil, ""
	}
	return p, origin
}

// routePolicy returns the route's enabled policy for a request with an
// origin (nil when there is none), the origin, and whether it is allowed.
func routePolicy(s *filters.Stream) (p *policy, origin string, allowed bool) {
	r := s.Route()
	if r == nil {
		return nil, "", false
	}
	p, _ = r.FilterConfig(Name).(*policy)
	if p == nil || !p.enabled {
		return nil, "", false
	}
	o, ok := s.Request.Header.Get("origin")
	if !ok || len(o) == 0 {
		return nil, "", false
	}
	origin = string(o)
	for i := range p.origins {
		if p.origins[i].match(origin) {
			return p, origin, true
		}
	}
	return p, origin, false
}

// OnRequest answers a preflight from an allowed origin, and one from
// another origin when the policy does not forward those.
func (filter) OnRequest(s *filters.Stream) filters.Status {
	if s.Request.Method != l7.MethodOptions || !s.Request.Header.Has("access-control-request-method") {
		return filters.Continue
	}
	p, origin, allowed := routePolicy(s)
	if p == nil {
		return filters.Continue
	}
	if !allowed {
		if p.forwardUnmatched {
			return filters.Continue
		}
		return s.SendLocalReply(200, "", 0)
	}
	st := s.SendLocalReply(200, "", 0)
	h := &s.Local.Header
	h.Add("access-control-allow-origin", origin)
	if p.credentials {
		h.Add("access-control-allow-credentials", "true")
	}
	for _, kv := range [][2]string{{"access-control-allow-methods", p.allowMethods},
		{"access-control-allow-headers", p.allowHeaders}, {"access-control-max-age", p.maxAge}} {
		if kv[1] != "" {
			h.Add(kv[0], kv[1])
		}
	}
	return st
}

// OnResponse marks the response to a request from an allowed origin.
func (filter) OnResponse(s *filters.Stream) filters.Status {
	if s.Response == nil {
		return filters.Continue
	}
	p, origin := policyFor(s)
	if p == nil {
		return filters.Continue
	}
	h := &s.Response.Header
	h.Set("access-control-allow-origin", origin)
	if p.credentials {
		h.Set("access-control-allow-credentials", "true")
	}
	if p.exposeHeaders != "" {
		h.Set("access-control-expose-headers", p.exposeHeaders)
	}
	return filters.Continue
}

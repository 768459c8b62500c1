package rbac

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Action is what an engine does with a request its policies match.
type Action uint8

// The actions of envoy.config.rbac.v3.RBAC.
const (
	// Allow lets a request through only when a policy matches.
	Allow Action = iota
	// Deny refuses a request when a policy matches.
	Deny
	// Log lets every request through and marks those a policy matches.
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "LOG"
}

// Input is what an engine matches: the request (nil for a network filter,
// where header and url_path rules never match), the downstream connection,
// and the remote address as the connection manager trusts it (remote_ip;
// the zero value means the connection's peer).
type Input struct {
	Request    *l7.Request
	Downstream *filters.Downstream
	RemoteAddr netip.AddrPort
	// Metadata is the stream's dynamic metadata (metadata rules); nil
	// for a network filter.
	Metadata MetadataSource
}

// Engine is one compiled RBAC: an action and policies, matched in policy
// name order as Envoy does (its policies map is ordered), so that the
// effective policy is the first that matches. Read-only after Compile;
// Evaluate does not allocate.
type Engine struct {
	action   Action
	policies []policy
}

// Result is an engine's verdict on one input.
type Result struct {
	// Allowed is the decision; Matched whether a policy matched, and
	// Policy (when Matched) the first one in name order.
	Allowed bool
	Matched bool
	Policy  *Policy
	// Index is Policy's place in evaluation order, -1 when none matched.
	Index int
}

// Policy is one named policy of an engine, with what its decisions are
// counted and reported under.
type Policy struct {
	// Name is the policy's key in the RBAC's policies map.
	Name string
	// Details is Envoy's response code details for a denial by this
	// policy: "rbac_access_denied_matched_policy[Name]".
	Details string
}

type policy struct {
	Policy
	permissions []permission // any of them
	principals  []principal  // and any of them
}

// Action returns the engine's action.
func (e *Engine) Action() Action { return e.action }

// Policies returns the policies in evaluation order.
func (e *Engine) Policies() []*Policy {
	ps := make([]*Policy, len(e.policies))
	for i := range e.policies {
		ps[i] = &e.policies[i].Policy
	}
	return ps
}

// Evaluate matches in against the policies and applies the action.
func (e *Engine) Evaluate(in *Input) Result {
	r := Result{Index: -1}
	for i := range e.policies {
		if e.policies[i].matches(in) {
			r.Matched, r.Policy, r.Index = true, &e.policies[i].Policy, i
			break
		}
	}
	switch e.action {
	case Allow:
		r.Allowed = r.Matched
	case Deny:
		r.Allowed = !r.Matched
	default:
		r.Allowed = true
	}
	return r
}

func (p *policy) matches(in *Input) bool {
	ok := false
	for i := range p.permissions {
		if p.permissions[i].matches(in) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for i := range p.principals {
		if p.principals[i].matches(in) {
			return true
		}
	}
	return false
}

// NoDetails is the response code details of a denial that no policy
// matched (an ALLOW engine's default).
const NoDetails = "rbac_access_denied_matched_policy[none]"

// Compile compiles an envoy.config.rbac.v3.RBAC; errors name the field at
// fault, relative to pb. Regexes are compiled here, once.
func Compile(pb *rbacv3.RBAC) (*Engine, error) {
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	e := &Engine{}
	switch pb.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		return nil, pbcheck.ErrAt("action", "unknown action %v", pb.GetAction())
	}
	names := make([]string, 0, len(pb.GetPolicies()))
	for n := range pb.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p, err := compilePolicy(pb.GetPolicies()[n])
		if err != nil {
			return nil, pbcheck.At(pbcheck.Key("policies", n), err)
		}
		p.Name = n
		p.Details = "rbac_access_denied_matched_policy[" + n + "]"
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func compilePolicy(pb *rbacv3.Policy) (policy, error) {
	var p policy
	if len(pb.GetPermissions()) == 0 {
		return p, pbcheck.ErrAt("permissions", "at least one permission is required")
	}
	if len(pb.GetPrincipals()) == 0 {
		return p, pbcheck.ErrAt("principals", "at least one principal is required")
	}
	for i, pm := range pb.GetPermissions() {
		c, err := compilePermission(pm)
		if err != nil {
			return p, pbcheck.At(pbcheck.Idx("permissions", i), err)
		}
		p.permissions = append(p.permissions, c)
	}
	for i, pr := range pb.GetPrincipals() {
		c, err := compilePrincipal(pr)
		if err != nil {
			return p, pbcheck.At(pbcheck.Idx("principals", i), err)
		}
		p.principals = append(p.principals, c)
	}
	return p, nil
}

type ruleKind uint8

const (
	kindAny ruleKind = iota
	kindAnd
	kindOr
	kindNot
	kindHeader
	kindURLPath
	kindDestinationIP
	kindDestinationPort
	kindDestinationPortRange
	kindServerName
	kindAuthenticated
	kindSourceIP // source_ip and direct_remote_ip: the connection's peer
	kindRemoteIP
	kindFilterState
	kindMetadata
)

// permission is a compiled Permission: a tree, matched without allocation.
type permission struct {
	kind     ruleKind
	children []permission // and, or; not has one
	header   *route.HeaderMatcher
	str      *route.StringMatcher // url_path, requested_server_name
	prefix   netip.Prefix
	lo, hi   uint32 // destination_port (lo == hi), destination_port_range [lo, hi)
	metadata *metadataMatcher
}

func compilePermission(pb *rbacv3.Permission) (permission, error) {
	var p permission
	var err error
	switch r := pb.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return p, pbcheck.ErrAt("any", "must be true")
		}
		p.kind = kindAny
	case *rbacv3.Permission_AndRules:
		p.kind = kindAnd
		p.children, err = compileAll(r.AndRules.GetRules(), "and_rules.rules", "rule", compilePermission)
	case *rbacv3.Permission_OrRules:
		p.kind = kindOr
		p.children, err = compileAll(r.OrRules.GetRules(), "or_rules.rules", "rule", compilePermission)
	case *rbacv3.Permission_NotRule:
		var c permission
		if c, err = compilePermission(r.NotRule); err != nil {
			return p, pbcheck.At("not_rule", err)
		}
		p.kind, p.children = kindNot, []permission{c}
	case *rbacv3.Permission_Header:
		p.kind = kindHeader
		if p.header, err = route.CompileHeaderMatcher(r.Header); err != nil {
			return p, pbcheck.At("header", err)
		}
	case *rbacv3.Permission_UrlPath:
		p.kind = kindURLPath
		if p.str, err = pathMatcher(r.UrlPath); err != nil {
			return p, pbcheck.At("url_path", err)
		}
	case *rbacv3.Permission_DestinationIp:
		p.kind = kindDestinationIP
		if p.prefix, err = cidr(r.DestinationIp); err != nil {
			return p, pbcheck.At("destination_ip", err)
		}
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return p, pbcheck.ErrAt("destination_port", "%d is not a port", r.DestinationPort)
		}
		p.kind, p.lo, p.hi = kindDestinationPort, r.DestinationPort, r.DestinationPort
	case *rbacv3.Permission_DestinationPortRange:
		start, end := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if start < 0 || end > 65536 || start >= end {
			return p, pbcheck.ErrAt("destination_port_range", "[%d, %d) is not a port range", start, end)
		}
		p.kind, p.lo, p.hi = kindDestinationPortRange, uint32(start), uint32(end)
	case *rbacv3.Permission_RequestedServerName:
		p.kind = kindServerName
		if p.str, err = route.CompileStringMatcher(r.RequestedServerName); err != nil {
			return p, pbcheck.At("requested_server_name", err)
		}
	case *rbacv3.Permission_Metadata:
		p.kind = kindMetadata
		if p.metadata, err = compileMetadataMatcher(r.Metadata); err != nil {
			return p, pbcheck.At("metadata", err)
		}
	case nil:
		return p, errors.New("a rule is required")
	default:
		return p, fmt.Errorf("rule %T is not supported", r)
	}
	return p, err
}

// compileAll compiles the rules (or identifiers) of an and/or list at
// field, at least one.
func compileAll[PB any, C any](pbs []PB, field, what string, compile func(PB) (C, error)) ([]C, error) {
	if len(pbs) == 0 {
		return nil, pbcheck.ErrAt(field, "at least one %s is required", what)
	}
	out := make([]C, 0, len(pbs))
	for i, pb := range pbs {
		c, err := compile(pb)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx(field, i), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *permission) matches(in *Input) bool {
	switch p.kind {
	case kindAny:
		return true
	case kindAnd:
		for i := range p.children {
			if !p.children[i].matches(in) {
				return false
			}
		}
		return true
	case kindOr:
		for i := range p.children {
			if p.children[i].matches(in) {
				return true
			}
		}
		return false
	case kindNot:
		return !p.children[0].matches(in)
	case kindHeader:
		return in.Request != nil && p.header.MatchRequest(in.Request)
	case kindURLPath:
		return matchPath(p.str, in)
	case kindDestinationIP:
		d := in.Downstream.Destination
		return d.IsValid() && p.prefix.Contains(d.Addr().Unmap())
	case kindDestinationPort:
		return in.Downstream.Destination.IsValid() && uint32(in.Downstream.Destination.Port()) == p.lo
	case kindDestinationPortRange:
		port := uint32(in.Downstream.Destination.Port())
		return in.Downstream.Destination.IsValid() && port >= p.lo && port < p.hi
	case kindServerName:
		return p.str.MatchString(in.Downstream.ServerName)
	case kindMetadata:
		return p.metadata.matches(in.Metadata)
	}
	return false
}

// principal is a compiled Principal.
type principal struct {
	kind     ruleKind
	children []principal
	header   *route.HeaderMatcher
	str      *route.StringMatcher // authenticated (nil: any peer), url_path, filter_state
	key      string               // filter_state's key
	prefix   netip.Prefix
	metadata *metadataMatcher
}

func compilePrincipal(pb *rbacv3.Principal) (principal, error) {
	var p principal
	var err error
	switch r := pb.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return p, pbcheck.ErrAt("any", "must be true")
		}
		p.kind = kindAny
	case *rbacv3.Principal_AndIds:
		p.kind = kindAnd
		p.children, err = compileAll(r.AndIds.GetIds(), "and_ids.ids", "identifier", compilePrincipal)
	case *rbacv3.Principal_OrIds:
		p.kind = kindOr
		p.children, err = compileAll(r.OrIds.GetIds(), "or_ids.ids", "identifier", compilePrincipal)
	case *rbacv3.Principal_NotId:
		var c principal
		if c, err = compilePrincipal(r.NotId); err != nil {
			return p, pbcheck.At("not_id", err)
		}
		p.kind, p.children = kindNot, []principal{c}
	case *rbacv3.Principal_Authenticated_:
		p.kind = kindAuthenticated
		if m := r.Authenticated.GetPrincipalName(); m != nil {
			if p.str, err = route.CompileStringMatcher(m); err != nil {
				return p, pbcheck.At("authenticated.principal_name", err)
			}
		}
	case *rbacv3.Principal_SourceIp:
		p.kind = kindSourceIP
		if p.prefix, err = cidr(r.SourceIp); err != nil {
			return p, pbcheck.At("source_ip", err)
		}
	case *rbacv3.Principal_DirectRemoteIp:
		p.kind = kindSourceIP
		if p.prefix, err = cidr(r.DirectRemoteIp); err != nil {
			return p, pbcheck.At("direct_remote_ip", err)
		}
	case *rbacv3.Principal_RemoteIp:
		p.kind = kindRemoteIP
		if p.prefix, err = cidr(r.RemoteIp); err != nil {
			return p, pbcheck.At("remote_ip", err)
		}
	case *rbacv3.Principal_Header:
		p.kind = kindHeader
		if p.header, err = route.CompileHeaderMatcher(r.Header); err != nil {
			return p, pbcheck.At("header", err)
		}
	case *rbacv3.Principal_UrlPath:
		p.kind = kindURLPath
		if p.str, err = pathMatcher(r.UrlPath); err != nil {
			return p, pbcheck.At("url_path", err)
		}
	case *rbacv3.Principal_FilterState:
		p.kind = kindFilterState
		p.key = r.FilterState.GetKey()
		if p.key == "" {
			return p, pbcheck.ErrAt("filter_state.key", "required")
		}
		sm := r.FilterState.GetStringMatch()
		if sm == nil {
			return p, pbcheck.ErrAt("filter_state", "only string_match is supported")
		}
		if p.str, err = route.CompileStringMatcher(sm); err != nil {
			return p, pbcheck.At("filter_state.string_match", err)
		}
	case *rbacv3.Principal_Metadata:
		p.kind = kindMetadata
		if p.metadata, err = compileMetadataMatcher(r.Metadata); err != nil {
			return p, pbcheck.At("metadata", err)
		}
	case nil:
		return p, errors.New("an identifier is required")
	default:
		return p, fmt.Errorf("identifier %T is not supported", r)
	}
	return p, err
}

func (p *principal) matches(in *Input) bool {
	switch p.kind {
	case kindAny:
		return true
	case kindAnd:
		for i := range p.children {
			if !p.children[i].matches(in) {
				return false
			}
		}
		return true
	case kindOr:
		for i := range p.children {
			if p.children[i].matches(in) {
				return true
			}
		}
		return false
	case kindNot:
		return !p.children[0].matches(in)
	case kindAuthenticated:
		// The peer's certificate is the HBONE tunnel's: its URI SAN.
		uri := in.Downstream.PeerURI
		return uri != "" && (p.str == nil || p.str.MatchString(uri))
	case kindSourceIP:
		a := in.Downstream.RemoteAddr
		return a.IsValid() && p.prefix.Contains(a.Addr().Unmap())
	case kindRemoteIP:
		a := in.RemoteAddr
		if !a.IsValid() {
			a = in.Downstream.RemoteAddr
		}
		return a.IsValid() && p.prefix.Contains(a.Addr().Unmap())
	case kindHeader:
		return in.Request != nil && p.header.MatchRequest(in.Request)
	case kindURLPath:
		return matchPath(p.str, in)
	case kindFilterState:
		v, ok := in.Downstream.FilterState(p.key)
		return ok && p.str.MatchString(v)
	case kindMetadata:
		return p.metadata.matches(in.Metadata)
	}
	return false
}

// matchPath matches a PathMatcher against the request path without its
// query string (and fragment), as Envoy's url_path does.
func matchPath(m *route.StringMatcher, in *Input) bool {
	if in.Request == nil || len(in.Request.Path) == 0 {
		return false
	}
	p := in.Request.PathOnly()
	for i, c := range p {
		if c == '#' {
			p = p[:i]
			break
		}
	}
	return m.Match(p)
}

func pathMatcher(pb *matcherv3.PathMatcher) (*route.StringMatcher, error) {
	sm := pb.GetPath()
	if sm == nil {
		return nil, pbcheck.ErrAt("path", "required")
	}
	m, err := route.CompileStringMatcher(sm)
	return m, pbcheck.At("path", err)
}

// cidr converts a CidrRange; the address is masked to its prefix as
// Envoy's IP matchers do.
func cidr(pb *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(pb.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, pbcheck.ErrAt("address_prefix", "%q is not an IP address", pb.GetAddressPrefix())
	}
	a = a.Unmap()
	bits := a.BitLen()
	if pl := pb.GetPrefixLen(); pl != nil {
		if int(pl.GetValue()) > bits {
			return netip.Prefix{}, pbcheck.ErrAt("prefix_len", "%d exceeds %d", pl.GetValue(), bits)
		}
		bits = int(pl.GetValue())
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// allowlist lists what of an RBAC the engine implements (CEL conditions,
// audit logging and extension matchers are refused by name).
var allowlist = pbcheck.Allowlist{
	"envoy.config.rbac.v3.RBAC":                    pbcheck.F("action", "policies"),
	"envoy.config.rbac.v3.Policy":                  pbcheck.F("permissions", "principals"),
	"envoy.config.rbac.v3.Permission":              pbcheck.F("and_rules", "or_rules", "any", "header", "url_path", "destination_ip", "destination_port", "destination_port_range", "not_rule", "requested_server_name", "metadata"),
	"envoy.config.rbac.v3.Permission.Set":          pbcheck.F("rules"),
	"envoy.config.rbac.v3.Principal":               pbcheck.F("and_ids", "or_ids", "any", "authenticated", "source_ip", "direct_remote_ip", "remote_ip", "header", "url_path", "filter_state", "not_id", "metadata"),
	"envoy.config.rbac.v3.Principal.Set":           pbcheck.F("ids"),
	"envoy.config.rbac.v3.Principal.Authenticated": pbcheck.F("principal_name"),
	"envoy.config.route.v3.HeaderMatcher": pbcheck.F("name", "exact_match", "safe_regex_match", "range_match", "present_match",
		"prefix_match", "suffix_match", "contains_match", "string_match", "invert_match", "treat_missing_header_as_empty"),
	"envoy.type.matcher.v3.PathMatcher":                 pbcheck.F("path"),
	"envoy.type.matcher.v3.StringMatcher":               pbcheck.F("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"envoy.type.matcher.v3.RegexMatcher":                pbcheck.F("google_re2", "regex"),
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":      pbcheck.F(),
	"envoy.type.matcher.v3.FilterStateMatcher":          pbcheck.F("key", "string_match"),
	"envoy.type.matcher.v3.MetadataMatcher":             pbcheck.F("filter", "path", "value", "invert"),
	"envoy.type.matcher.v3.MetadataMatcher.PathSegment": pbcheck.F("key"),
	"envoy.type.matcher.v3.ValueMatcher":                pbcheck.F("null_match", "double_match", "string_match", "bool_match", "present_match", "list_match", "or_match"),
	"envoy.type.matcher.v3.ValueMatcher.NullMatch":      pbcheck.F(),
	"envoy.type.matcher.v3.DoubleMatcher":               pbcheck.F("range", "exact"),
	"envoy.type.v3.DoubleRange":                         pbcheck.F("start", "end"),
	"envoy.type.matcher.v3.ListMatcher":                 pbcheck.F("one_of"),
	"envoy.type.matcher.v3.OrMatcher":                   pbcheck.F("value_matchers"),
	"envoy.type.v3.Int64Range":                          pbcheck.F("start", "end"),
	"envoy.type.v3.Int32Range":                          pbcheck.F("start", "end"),
	"envoy.config.core.v3.CidrRange":                    pbcheck.F("address_prefix", "prefix_len"),
}

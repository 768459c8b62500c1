// Package rbac is Envoy's role-based access control, as istiod writes it
// for a waypoint: the HTTP filter envoy.filters.http.rbac (registered
// here) and the engine behind the network filter envoy.filters.network.rbac
// (decoded by xds, enforced by the proxy when a connection starts).
//
// An engine is an action (ALLOW, DENY, LOG) and named policies, each an OR
// of permissions (what is asked: and_rules, or_rules, not_rule, any,
// header, url_path, destination_ip, destination_port(_range),
// requested_server_name) and an OR of principals (who asks: and_ids,
// or_ids, not_id, any, authenticated.principal_name, filter_state such as
// io.istio.peer_principal, direct_remote_ip, source_ip, remote_ip, header,
// url_path). A policy matches when a permission and a principal do; ALLOW
// lets through only what a policy matches, DENY what none matches, LOG
// everything. Shadow rules are evaluated for their counters only. Filters
// run in the order the config lists them, so istiod's DENY filter comes
// before its ALLOW filter; a request no filter refuses goes on. The HTTP
// filter runs in a dubbo_proxy's dubbo_filters too, on a Dubbo call in the
// request model (:path /interface/method, the attachments as headers; see
// docs/dubbo.md), and counts its decisions in the same counters.
//
// Matching is compiled once per config into a tree walked without
// allocation; regexes are compiled once (filters/router/route's string and
// header matchers, which the route table uses too).
package rbac

import (
	"fmt"

	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Name and TypeURL identify the HTTP filter in an HttpConnectionManager;
// NetworkName and NetworkTypeURL the network filter in a filter chain.
const (
	Name           = "envoy.filters.http.rbac"
	TypeURL        = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	NetworkName    = "envoy.filters.network.rbac"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// DeniedBody is the body of Envoy's HTTP denial (403; gRPC status 7).
const DeniedBody = "RBAC: access denied"

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

var httpAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.rbac.v3.RBAC": pbcheck.F("rules*", "shadow_rules*", "rules_stat_prefix",
		"shadow_rules_stat_prefix", "track_per_rule_stats"),
	"envoy.extensions.filters.http.rbac.v3.RBACPerRoute": pbcheck.F("rbac*"),
}

// New builds the HTTP filter from an RBAC config.
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Filter, error) {
	pb, ok := cfg.(*httprbacv3.RBAC)
	if !ok {
		return nil, fmt.Errorf("%s: config is %T, want RBAC", Name, cfg)
	}
	return newFilter(ctx, pb)
}

// ParsePerRoute decodes a route's RBACPerRoute: its rbac replaces the
// filter's config for the route; an empty one turns the filter off there.
func (factory) ParsePerRoute(ctx filters.BuildContext, cfg proto.Message) (any, error) {
	pb, ok := cfg.(*httprbacv3.RBACPerRoute)
	if !ok {
		return nil, fmt.Errorf("%s: per-route config is %T, want RBACPerRoute", Name, cfg)
	}
	if err := httpAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetRbac() == nil {
		return &Filter{}, nil
	}
	f, err := newFilter(ctx, pb.GetRbac())
	return f, pbcheck.At("rbac", err)
}

func newFilter(ctx filters.BuildContext, pb *httprbacv3.RBAC) (*Filter, error) {
	if err := httpAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	// track_per_rule_stats changes nothing here: decisions are always
	// counted per policy.
	d, err := NewDecider(ctx.Stats, "http", pb.GetRules(), pb.GetShadowRules(), pb.GetRulesStatPrefix(), pb.GetShadowRulesStatPrefix())
	if err != nil {
		return nil, err
	}
	f := &Filter{d: d}
	if d.Shadow() != nil {
		p := pb.GetShadowRulesStatPrefix()
		f.shadowPolicyKey, f.shadowResultKey = p+MetadataShadowPolicyID, p+MetadataShadowResult
	}
	return f, nil
}

// Dynamic metadata keys the filter sets under its name when it has shadow
// rules, as Envoy's does, each prefixed with shadow_rules_stat_prefix: the
// matching shadow policy's name (only when one matched) and the shadow
// decision ("allowed" or "denied"). Istio's CUSTOM action selects the
// requests ext_authz checks so (istio_ext_authz_shadow_effective_policy_id).
const (
	MetadataShadowPolicyID = "shadow_effective_policy_id"
	MetadataShadowResult   = "shadow_engine_result"
)

// Filter is the HTTP RBAC filter. Built once per chain, shared by its
// streams; read-only.
type Filter struct {
	d *Decider // nil: disabled (an empty RBACPerRoute)
	// shadowPolicyKey and shadowResultKey are the dynamic metadata keys
	// of the shadow decision; "" without shadow rules.
	shadowPolicyKey, shadowResultKey string
}

// OnRequest decides the request; a denial is answered 403 "RBAC: access
// denied" (gRPC status 7, Dubbo status 40: the local reply is of kind
// status.Denied) with the deciding policy in the response code details.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	if r := s.Route(); r != nil {
		if rc, ok := r.FilterConfig(Name).(*Filter); ok {
			f = rc
		}
	}
	d := f.d
	if d == nil {
		return filters.Continue
	}
	in := Input{Request: s.Request, Downstream: s.Downstream, RemoteAddr: s.TrustedRemoteAddr(), Metadata: s}
	ok, details, shadow := d.DecideShadow(&in)
	if f.shadowResultKey != "" {
		if shadow.Policy != nil {
			s.SetMetadataString(Name, f.shadowPolicyKey, shadow.Policy.Name)
		}
		res := "allowed"
		if !shadow.Allowed {
			res = "denied"
		}
		s.SetMetadataString(Name, f.shadowResultKey, res)
	}
	if ok {
		return filters.Continue
	}
	s.SendLocalReply(status.Denied.HTTPStatus(), DeniedBody, 0)
	s.Local.Kind = status.Denied
	s.ResponseCodeDetails = details
	return filters.Stop
}

var networkAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.rbac.v3.RBAC": pbcheck.F("rules*", "shadow_rules*", "stat_prefix",
		"shadow_rules_stat_prefix", "enforcement_type"),
}

// Network is a decoded envoy.filters.network.rbac: decided once per
// connection, before the upstream is opened (Envoy decides on the first
// byte, with the same verdict). Read-only.
type Network struct {
	StatPrefix string
	// ShadowPolicyKey is the connection's dynamic metadata key (under
	// NetworkName) of the matched shadow policy's name, as the HTTP
	// filter's; "" without shadow rules.
	ShadowPolicyKey string
	d               *Decider
}

// NewNetwork decodes a network RBAC filter's config, its counters
// registered on ctx.Stats; errors name the field relative to it.
func NewNetwork(ctx filters.BuildContext, pb *netrbacv3.RBAC) (*Network, error) {
	if err := networkAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetEnforcementType() != netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, pbcheck.ErrAt("enforcement_type", "%v is not supported", pb.GetEnforcementType())
	}
	d, err := NewDecider(ctx.Stats, "tcp", pb.GetRules(), pb.GetShadowRules(), pb.GetStatPrefix(), pb.GetShadowRulesStatPrefix())
	if err != nil {
		return nil, err
	}
	n := &Network{StatPrefix: pb.GetStatPrefix(), d: d}
	if d.Shadow() != nil {
		n.ShadowPolicyKey = pb.GetShadowRulesStatPrefix() + MetadataShadowPolicyID
	}
	return n, nil
}

// Allow decides a connection from down: whether it may go on and, when
// not, the deciding policy's details.
func (n *Network) Allow(down *filters.Downstream) (bool, string) {
	ok, details, _ := n.AllowShadow(down)
	return ok, details
}

// AllowShadow is Allow, also returning the name of the shadow policy that
// matched ("" when none): the value of ShadowPolicyKey.
func (n *Network) AllowShadow(down *filters.Downstream) (ok bool, details, shadowPolicy string) {
	in := Input{Downstream: down}
	ok, details, shadow := n.d.DecideShadow(&in)
	if shadow.Policy != nil {
		shadowPolicy = shadow.Policy.Name
	}
	return ok, details, shadowPolicy
}

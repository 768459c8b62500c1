package rbac

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture returns the typed_config of every filter named name in the
// chains of istiod's reviews listeners whose name starts with chain, in
// order, as JSON without its "@type".
func fixture(t testing.TB, chain, name string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile("../../xds/testdata/istiod/reviews/listeners.json")
	if err != nil {
		t.Fatal(err)
	}
	type filter struct {
		Name        string                     `json:"name"`
		TypedConfig map[string]json.RawMessage `json:"typedConfig"`
	}
	var doc struct {
		Resources []struct {
			FilterChains []struct {
				Name    string   `json:"name"`
				Filters []filter `json:"filters"`
			} `json:"filterChains"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	add := func(f filter) {
		if f.Name != name {
			return
		}
		delete(f.TypedConfig, "@type")
		b, _ := json.Marshal(f.TypedConfig)
		out = append(out, b)
	}
	for _, r := range doc.Resources {
		for _, fc := range r.FilterChains {
			if !strings.HasPrefix(fc.Name, chain) {
				continue
			}
			for _, f := range fc.Filters {
				add(f)
				var hcm struct {
					HTTPFilters []filter `json:"httpFilters"`
				}
				if raw, ok := f.TypedConfig["httpFilters"]; ok {
					json.Unmarshal([]byte(`{"httpFilters":`+string(raw)+`}`), &hcm)
					for _, hf := range hcm.HTTPFilters {
						add(hf)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in chain %s of the fixture", name, chain)
	}
	return out
}

// reviewsChain builds the HTTP RBAC filters of istiod's reviews:9080 chain,
// in order (the DENY policy's filter first).
func reviewsChain(t testing.TB) []*Filter {
	t.Helper()
	var fs []*Filter
	for _, b := range fixture(t, "inbound-vip|9080|http", Name) {
		var pb httprbacv3.RBAC
		if err := protojson.Unmarshal(b, &pb); err != nil {
			t.Fatal(err)
		}
		f, err := factory{}.New(testContext(), &pb)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if len(fs) != 2 {
		t.Fatalf("%d RBAC filters in the chain, want 2", len(fs))
	}
	return fs
}

func identity(ns, sa string) *filters.Downstream {
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: ns, ServiceAccount: sa}
	return &filters.Downstream{Peer: id, PeerURI: id.String(),
		RemoteAddr:  netip.MustParseAddrPort("127.0.60.21:40000"),
		Destination: netip.MustParseAddrPort("127.10.0.10:9080")}
}

// run passes a request through the filters as the chain would, and returns
// the local reply's status (0: allowed) and details.
func run(fs []*Filter, down *filters.Downstream, method, path string, header ...string) (int, string) {
	req := &l7.Request{Method: method, Path: []byte(path), Authority: []byte("reviews.mesh.local:9080")}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	s := filters.NewStream(context.Background(), req, down, nil)
	for _, f := range fs {
		if f.OnRequest(s) == filters.Stop {
			return s.Local.Status, s.ResponseCodeDetails
		}
	}
	return 0, ""
}

// The reviews policies: deny-admin (DENY /admin*), then reviews-viewer
// (ALLOW productpage GET /api/* and /reviews/*; ALLOW namespace monitoring
// on /metrics). Verdicts as Envoy gives them.
func TestReviewsPolicies(t *testing.T) {
	fs := reviewsChain(t)
	const (
		denyAdmin = "rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]"
		none      = "rbac_access_denied_matched_policy[none]"
	)
	productpage, prom := identity("default", "productpage"), identity("monitoring", "prometheus")
	cases := []struct {
		down         *filters.Downstream
		method, path string
		status       int
		details      string
	}{
		{productpage, "GET", "/api/v1/reviews", 0, ""},
		{productpage, "GET", "/reviews/1", 0, ""},
		{productpage, "GET", "/api/?q=1", 0, ""},
		{productpage, "GET", "/api", 403, none},
		{productpage, "GET", "/reviews", 403, none},
		{productpage, "POST", "/api/v1", 403, none},
		{productpage, "HEAD", "/api/v1", 403, none},
		{productpage, "get", "/api/v1", 403, none},
		{productpage, "GET", "/admin", 403, denyAdmin},
		{productpage, "GET", "/administrator", 403, denyAdmin},
		{productpage, "GET", "/admin?x=/api/", 403, denyAdmin},
		{productpage, "GET", "/ADMIN", 403, none},
		{productpage, "GET", "/metrics", 403, none},
		{prom, "GET", "/metrics", 0, ""},
		{prom, "POST", "/metrics", 0, ""},
		{prom, "GET", "/metrics?format=text", 0, ""},
		{prom, "GET", "/metrics/x", 403, none},
		{prom, "GET", "/api/v1", 403, none},
		{prom, "GET", "/admin", 403, denyAdmin},
		{identity("default", "ratings"), "GET", "/api/v1", 403, none},
		{identity("other", "productpage"), "GET", "/reviews/1", 403, none},
		{identity("monitoringx", "prometheus"), "GET", "/metrics", 403, none},
		{&filters.Downstream{}, "GET", "/api/v1", 403, none},
		{&filters.Downstream{}, "GET", "/admin", 403, denyAdmin},
	}
	for _, c := range cases {
		st, details := run(fs, c.down, c.method, c.path)
		if st != c.status || details != c.details {
			t.Errorf("%s %s %s: got %d %q, want %d %q", c.down.PeerURI, c.method, c.path, st, details, c.status, c.details)
		}
	}
}

func TestDenialIsKindDenied(t *testing.T) {
	fs := reviewsChain(t)
	req := &l7.Request{Method: "GET", Path: []byte("/admin")}
	req.Header.Add("content-type", "application/grpc")
	s := filters.NewStream(context.Background(), req, identity("default", "productpage"), nil)
	if fs[0].OnRequest(s) != filters.Stop {
		t.Fatal("not denied")
	}
	if s.Local.Status != 403 || s.Local.Body != DeniedBody || s.Local.Kind != status.Denied || !s.GRPC {
		t.Errorf("local reply %+v", s.Local)
	}
	if got := status.GRPCFromHTTP(s.Local.Status); got != status.GRPCPermissionDenied {
		t.Errorf("gRPC status %d, want 7", got)
	}
	if got := s.Local.Kind.DubboStatus(); got != 40 {
		t.Errorf("Dubbo status %d, want 40", got)
	}
}

// rbacFrom builds an engine from a protojson RBAC.
func rbacFrom(t testing.TB, js string) *rbacv3.RBAC {
	t.Helper()
	var pb rbacv3.RBAC
	if err := protojson.Unmarshal([]byte(js), &pb); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return &pb
}

// Each permission and principal kind, alone in an ALLOW policy.
func TestRules(t *testing.T) {
	down := &filters.Downstream{
		PeerURI:     "spiffe://cluster.local/ns/default/sa/client",
		RemoteAddr:  netip.MustParseAddrPort("10.1.2.3:5555"),
		Destination: netip.MustParseAddrPort("127.10.0.10:9080"),
		Authority:   "127.10.0.10:9080",
	}
	xff := netip.MustParseAddrPort("192.168.7.7:0")
	req := func(method, path string, h ...string) *l7.Request {
		r := &l7.Request{Method: method, Path: []byte(path), Authority: []byte("reviews:9080")}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	get := req("GET", "/a/b?c=d", "x-user", "Jason", "x-multi", "1", "x-multi", "2")
	any := `{"any":true}`
	cases := []struct {
		name, perm, princ string
		in                Input
		want              bool
	}{
		{"any", any, any, Input{Request: get, Downstream: down}, true},
		{"method header", `{"header":{"name":":method","stringMatch":{"exact":"GET"}}}`, any, Input{Request: get, Downstream: down}, true},
		{"authority header", `{"header":{"name":":authority","stringMatch":{"prefix":"reviews"}}}`, any, Input{Request: get, Downstream: down}, true},
		{":path header keeps the query", `{"header":{"name":":path","stringMatch":{"suffix":"c=d"}}}`, any, Input{Request: get, Downstream: down}, true},
		{"url_path drops the query", `{"urlPath":{"path":{"exact":"/a/b"}}}`, any, Input{Request: get, Downstream: down}, true},
		{"url_path ignore_case", `{"urlPath":{"path":{"prefix":"/A/","ignoreCase":true}}}`, any, Input{Request: get, Downstream: down}, true},
		{"url_path contains", `{"urlPath":{"path":{"contains":"/b"}}}`, any, Input{Request: get, Downstream: down}, true},
		{"url_path regex", `{"urlPath":{"path":{"safeRegex":{"regex":"/a/[a-z]+"}}}}`, any, Input{Request: get, Downstream: down}, true},
		{"url_path on a connection", `{"urlPath":{"path":{"prefix":"/"}}}`, any, Input{Downstream: down}, false},
		{"repeated header joined", `{"header":{"name":"x-multi","stringMatch":{"exact":"1,2"}}}`, any, Input{Request: get, Downstream: down}, true},
		{"header case-sensitive value", `{"header":{"name":"x-user","stringMatch":{"exact":"jason"}}}`, any, Input{Request: get, Downstream: down}, false},
		{"header ignore_case", `{"header":{"name":"x-user","stringMatch":{"exact":"jason","ignoreCase":true}}}`, any, Input{Request: get, Downstream: down}, true},
		{"header absent", `{"header":{"name":"x-none","presentMatch":true}}`, any, Input{Request: get, Downstream: down}, false},
		{"header invert", `{"header":{"name":"x-user","stringMatch":{"exact":"bob"},"invertMatch":true}}`, any, Input{Request: get, Downstream: down}, true},
		{"destination_ip", `{"destinationIp":{"addressPrefix":"127.10.0.0","prefixLen":16}}`, any, Input{Downstream: down}, true},
		{"destination_ip miss", `{"destinationIp":{"addressPrefix":"127.11.0.0","prefixLen":16}}`, any, Input{Downstream: down}, false},
		{"destination_port", `{"destinationPort":9080}`, any, Input{Downstream: down}, true},
		{"destination_port miss", `{"destinationPort":9090}`, any, Input{Downstream: down}, false},
		{"destination_port_range", `{"destinationPortRange":{"start":9000,"end":9081}}`, any, Input{Downstream: down}, true},
		{"destination_port_range end excluded", `{"destinationPortRange":{"start":9000,"end":9080}}`, any, Input{Downstream: down}, false},
		{"requested_server_name empty", `{"requestedServerName":{"exact":""}}`, any, Input{Downstream: down}, true},
		{"requested_server_name", `{"requestedServerName":{"suffix":".local"}}`, any, Input{Downstream: down}, false},
		{"and_rules", `{"andRules":{"rules":[{"destinationPort":9080},{"header":{"name":":method","stringMatch":{"exact":"POST"}}}]}}`, any, Input{Request: get, Downstream: down}, false},
		{"or_rules", `{"orRules":{"rules":[{"destinationPort":1},{"header":{"name":":method","stringMatch":{"exact":"GET"}}}]}}`, any, Input{Request: get, Downstream: down}, true},
		{"not_rule", `{"notRule":{"destinationPort":9080}}`, any, Input{Downstream: down}, false},
		{"filter_state peer", any, `{"filterState":{"key":"io.istio.peer_principal","stringMatch":{"exact":"spiffe://cluster.local/ns/default/sa/client"}}}`, Input{Downstream: down}, true},
		{"filter_state regex", any, `{"filterState":{"key":"io.istio.peer_principal","stringMatch":{"safeRegex":{"regex":".*/ns/default/.*"}}}}`, Input{Downstream: down}, true},
		{"filter_state authority", any, `{"filterState":{"key":"io.istio.connect_authority","stringMatch":{"exact":"127.10.0.10:9080"}}}`, Input{Downstream: down}, true},
		{"filter_state unset key", any, `{"filterState":{"key":"other","stringMatch":{"prefix":""}}}`, Input{Downstream: down}, false},
		{"authenticated any", any, `{"authenticated":{}}`, Input{Downstream: down}, true},
		{"authenticated none", any, `{"authenticated":{}}`, Input{Downstream: &filters.Downstream{}}, false},
		{"authenticated name", any, `{"authenticated":{"principalName":{"suffix":"/sa/client"}}}`, Input{Downstream: down}, true},
		{"direct_remote_ip", any, `{"directRemoteIp":{"addressPrefix":"10.1.0.0","prefixLen":16}}`, Input{Downstream: down, RemoteAddr: xff}, true},
		{"source_ip", any, `{"sourceIp":{"addressPrefix":"10.1.2.3"}}`, Input{Downstream: down, RemoteAddr: xff}, true},
		{"remote_ip from xff", any, `{"remoteIp":{"addressPrefix":"192.168.7.0","prefixLen":24}}`, Input{Downstream: down, RemoteAddr: xff}, true},
		{"remote_ip falls back to the peer", any, `{"remoteIp":{"addressPrefix":"10.1.2.3","prefixLen":32}}`, Input{Downstream: down}, true},
		{"principal header", any, `{"header":{"name":"x-user","stringMatch":{"exact":"Jason"}}}`, Input{Request: get, Downstream: down}, true},
		{"principal url_path", any, `{"urlPath":{"path":{"prefix":"/a"}}}`, Input{Request: get, Downstream: down}, true},
		{"and_ids", any, `{"andIds":{"ids":[{"authenticated":{}},{"notId":{"directRemoteIp":{"addressPrefix":"10.0.0.0","prefixLen":8}}}]}}`, Input{Downstream: down}, false},
		{"or_ids", any, `{"orIds":{"ids":[{"directRemoteIp":{"addressPrefix":"10.0.0.0","prefixLen":8}},{"any":true}]}}`, Input{Downstream: down}, true},
	}
	for _, c := range cases {
		for _, action := range []string{"ALLOW", "DENY", "LOG"} {
			e, err := Compile(rbacFrom(t, `{"action":"`+action+`","policies":{"p":{"permissions":[`+c.perm+`],"principals":[`+c.princ+`]}}}`))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			r := e.Evaluate(&c.in)
			want := map[string]bool{"ALLOW": c.want, "DENY": !c.want, "LOG": true}[action]
			if r.Matched != c.want || r.Allowed != want {
				t.Errorf("%s %s: matched %v allowed %v, want matched %v allowed %v", action, c.name, r.Matched, r.Allowed, c.want, want)
			}
		}
	}
}

func TestPolicyOrder(t *testing.T) {
	e, err := Compile(rbacFrom(t, `{"action":"DENY","policies":{
		"b":{"permissions":[{"any":true}],"principals":[{"any":true}]},
		"a":{"permissions":[{"destinationPort":1}],"principals":[{"any":true}]},
		"c":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := e.Evaluate(&Input{Downstream: &filters.Downstream{Destination: netip.MustParseAddrPort("1.2.3.4:80")}})
	if r.Allowed || r.Policy.Name != "b" {
		t.Errorf("got %+v, want denied by b (the first matching policy in name order)", r)
	}
	if e, _ := Compile(&rbacv3.RBAC{}); e.Evaluate(&Input{Downstream: &filters.Downstream{}}).Allowed {
		t.Error("an ALLOW engine without policies allows")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"any":true}],"condition":{"constExpr":{"boolValue":true}}}}}`, `policies["p"].condition`},
		{`{"policies":{"p":{"permissions":[{"metadata":{"filter":"x"}}],"principals":[{"any":true}]}}}`, `policies["p"].permissions[0].metadata.path`},
		{`{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"metadata":{"filter":"x","path":[{"key":"a"}],"value":{}}}]}}}`, `policies["p"].principals[0].metadata.value`},
		{`{"policies":{"p":{"permissions":[{"urlPath":{"path":{"safeRegex":{"regex":"(("}}}}],"principals":[{"any":true}]}}}`, `policies["p"].permissions[0].url_path.path.safe_regex`},
		{`{"policies":{"p":{"permissions":[],"principals":[{"any":true}]}}}`, `policies["p"].permissions`},
		{`{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"filterState":{"key":"k","addressMatch":{}}}]}}}`, `policies["p"].principals[0].filter_state`},
		{`{"policies":{"p":{"permissions":[{"destinationIp":{"addressPrefix":"nope"}}],"principals":[{"any":true}]}}}`, `policies["p"].permissions[0].destination_ip.address_prefix`},
		{`{"policies":{"p":{"permissions":[{"andRules":{"rules":[{"notRule":{"any":false}}]}}],"principals":[{"any":true}]}}}`, `policies["p"].permissions[0].and_rules.rules[0].not_rule.any`},
	} {
		_, err := Compile(rbacFrom(t, c.js))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.js, err, c.want)
		}
	}
	if _, err := (factory{}).New(testContext(), &httprbacv3.RBAC{Matcher: nil, ShadowMatcher: nil, Rules: &rbacv3.RBAC{AuditLoggingOptions: &rbacv3.RBAC_AuditLoggingOptions{}}}); err == nil || !strings.Contains(err.Error(), "rules.audit_logging_options") {
		t.Errorf("audit logging: %v", err)
	}
}

// The TCP chain of istiod's reviews:9300: the DENY policy turned into
// "deny any" and an ALLOW with no policy left (its rules were HTTP-only):
// every connection is refused.
func TestNetworkFixture(t *testing.T) {
	var ns []*Network
	for _, b := range fixture(t, "inbound-vip|9300|tcp", NetworkName) {
		var pb netrbacv3.RBAC
		if err := protojson.Unmarshal(b, &pb); err != nil {
			t.Fatal(err)
		}
		n, err := NewNetwork(testContext(), &pb)
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	down := identity("default", "productpage")
	ok0, d0 := ns[0].Allow(down)
	ok1, d1 := ns[1].Allow(down)
	if ok0 || d0 != "rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]" || ok1 || d1 != NoDetails {
		t.Errorf("got %v %q, %v %q; want both denied", ok0, d0, ok1, d1)
	}
	if _, err := NewNetwork(testContext(), &netrbacv3.RBAC{EnforcementType: netrbacv3.RBAC_CONTINUOUS}); err == nil || !strings.Contains(err.Error(), "enforcement_type") {
		t.Errorf("CONTINUOUS: %v", err)
	}
}

func TestShadowRulesOnlyCount(t *testing.T) {
	pb := &httprbacv3.RBAC{ShadowRules: rbacFrom(t, `{"action":"DENY","policies":{"all":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`),
		ShadowRulesStatPrefix: "shadow_test_"}
	f, err := factory{}.New(testContext(), pb)
	if err != nil {
		t.Fatal(err)
	}
	before := counterValue(t, "envoy_http_rbac_shadow_denied", "shadow_test_", "all")
	if st, _ := run([]*Filter{f}, identity("a", "b"), "GET", "/"); st != 0 {
		t.Errorf("shadow rules refused the request: %d", st)
	}
	if got := counterValue(t, "envoy_http_rbac_shadow_denied", "shadow_test_", "all"); got != before+1 {
		t.Errorf("shadow_denied %v, want %v", got, before+1)
	}
}

// TestCountersOutliveRebuild: a filter built again from the same config
// (a reload) counts on the same series, and a filter built with the zero
// scope (a config only validated) counts on none of the registry's.
func TestCountersOutliveRebuild(t *testing.T) {
	pb := &httprbacv3.RBAC{Rules: rbacFrom(t, `{"action":"DENY","policies":{"all":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`),
		RulesStatPrefix: "rebuild_test_"}
	before := counterValue(t, "envoy_http_rbac_denied", "rebuild_test_", "all")
	for i := range 2 {
		f, err := factory{}.New(testContext(), pb)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := run([]*Filter{f}, identity("a", "b"), "GET", "/"); st != 403 {
			t.Fatalf("build %d: status %d, want 403", i, st)
		}
	}
	unregistered, err := factory{}.New(filters.BuildContext{}, pb)
	if err != nil {
		t.Fatal(err)
	}
	run([]*Filter{unregistered}, identity("a", "b"), "GET", "/")
	if got := counterValue(t, "envoy_http_rbac_denied", "rebuild_test_", "all"); got != before+2 {
		t.Errorf("denied %v, want %v: both builds on one series, the unregistered one on none", got, before+2)
	}
}

func TestPerRoute(t *testing.T) {
	deny := &httprbacv3.RBAC{Rules: rbacFrom(t, `{"action":"DENY","policies":{"all":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`)}
	f, _ := factory{}.New(testContext(), deny)
	off, err := factory{}.ParsePerRoute(testContext(), &httprbacv3.RBACPerRoute{})
	if err != nil {
		t.Fatal(err)
	}
	req := &l7.Request{Method: "GET", Path: []byte("/")}
	s := filters.NewStream(context.Background(), req, identity("a", "b"), resolver{testRoute{off}})
	if f.OnRequest(s) != filters.Continue {
		t.Error("an empty RBACPerRoute did not turn the filter off")
	}
}

type testRoute struct{ cfg any }

func (r testRoute) Name() string                 { return "r" }
func (r testRoute) FilterConfig(name string) any { return map[string]any{Name: r.cfg}[name] }

type resolver struct{ r filters.Route }

func (r resolver) Resolve(*filters.Stream) filters.Route { return r.r }

// TestShadowMetadata: the shadow decision is left in the stream's dynamic
// metadata under the shadow rules' stat prefix, as Istio's CUSTOM action
// reads it (istio_ext_authz_shadow_effective_policy_id): the policy only
// when one matched.
func TestShadowMetadata(t *testing.T) {
	pb := &httprbacv3.RBAC{ShadowRules: rbacFrom(t, `{"action":"DENY","policies":{"istio-ext-authz-p":{"permissions":[{"urlPath":{"path":{"prefix":"/ext/"}}}],"principals":[{"any":true}]}}}`),
		ShadowRulesStatPrefix: "istio_ext_authz_"}
	f, err := factory{}.New(testContext(), pb)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, policy, result string
	}{{"/ext/a", "istio-ext-authz-p", "denied"}, {"/other", "", "allowed"}} {
		s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte(c.path)}, identity("a", "b"), nil)
		if f.OnRequest(s) != filters.Continue {
			t.Fatalf("%s: shadow rules stopped the request", c.path)
		}
		p, _ := s.MetadataString(Name, "istio_ext_authz_shadow_effective_policy_id")
		r, _ := s.MetadataString(Name, "istio_ext_authz_shadow_engine_result")
		if p != c.policy || r != c.result {
			t.Errorf("%s: metadata %q %q, want %q %q", c.path, p, r, c.policy, c.result)
		}
	}
}

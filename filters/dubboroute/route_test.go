package dubboroute

import (
	"strings"
	"testing"

	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// configs parses a YAML list of RouteConfigurations.
func configs(t testing.TB, src string) []*dubbov3.RouteConfiguration {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte("route_config:\n" + src))
	if err != nil {
		t.Fatal(err)
	}
	var mrc dubbov3.MultipleRouteConfiguration
	if err := protojson.Unmarshal(js, &mrc); err != nil {
		t.Fatal(err)
	}
	return mrc.GetRouteConfig()
}

// call is a Dubbo call as the connection manager fills the request model.
type call struct {
	service, method, version, group string
	atts                            [][2]string
	args                            []string // "" for an argument without a string form
}

func (c call) request() *l7.Request {
	req := &l7.Request{Proto: l7.Dubbo, Method: c.method, Path: []byte("/" + c.service + "/" + c.method)}
	req.Header.Add(":dubbo-version", "2.0.2")
	req.Header.Add(":dubbo-service-version", c.version)
	if c.group != "" {
		req.Header.Add(":dubbo-group", c.group)
	}
	for _, a := range c.atts {
		req.Header.Add(a[0], a[1])
	}
	return req
}

type args []string

type byteArgs [][]byte

func (a byteArgs) Arg(i int) ([]byte, bool) { return a[i], i < len(a) }

func (a args) Arg(i int) ([]byte, bool) {
	if i >= len(a) || a[i] == "" {
		return nil, false
	}
	return []byte(a[i]), true
}

const table = `
- name: greeter-v2
  interface: com.example.Greeter
  version: 2.0.0
  routes:
  - match: {method: {name: {exact: hello}}}
    route: {cluster: v2}
- name: greeter
  interface: com.example.Greeter
  routes:
  - match:
      method: {name: {exact: hello}}
      headers: [{name: x-user, string_match: {exact: admin}}]
    route: {cluster: admin}
  - match:
      method:
        name: {prefix: get}
        params_match:
          0: {exact_match: alice}
          1: {range_match: {start: 10, end: 20}}
    route: {cluster: params}
  - match: {method: {name: {safe_regex: {regex: "say.*"}}}}
    route: {weighted_clusters: {clusters: [{name: a, weight: 80}, {name: b, weight: 20}]}}
  - match: {method: {name: {exact: hello}}, headers: [{name: ":dubbo-group", string_match: {exact: canary}}]}
    route: {cluster: canary}
  - match: {method: {name: {exact: hello}}}
    route: {cluster: default}
- name: suffix
  interface: "*.Orders"
  group: blue
  routes:
  - match: {method: {name: {safe_regex: {regex: ".*"}}}}
    route: {cluster: orders-blue}
- name: prefix
  interface: "org.legacy.*"
  routes:
  - match: {}
    route: {cluster: legacy}
`

func TestMatch(t *testing.T) {
	tb, err := Compile(configs(t, table), "route_config", CompileOptions{ClusterExists: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		c    call
		want string // cluster; "" no route
	}{
		{"version config first", call{service: "com.example.Greeter", method: "hello", version: "2.0.0"}, "v2"},
		{"another version falls to the next config", call{service: "com.example.Greeter", method: "hello", version: "1.0.0"}, "default"},
		{"an attachment", call{service: "com.example.Greeter", method: "hello", atts: [][2]string{{"x-user", "admin"}}}, "admin"},
		{"the group view", call{service: "com.example.Greeter", method: "hello", group: "canary"}, "canary"},
		{"parameters", call{service: "com.example.Greeter", method: "getUser", args: []string{"alice", "15"}}, "params"},
		{"a parameter out of range", call{service: "com.example.Greeter", method: "getUser", args: []string{"alice", "20"}}, ""},
		{"a parameter without a string form", call{service: "com.example.Greeter", method: "getUser", args: []string{"alice", ""}}, ""},
		{"a parameter missing", call{service: "com.example.Greeter", method: "getUser", args: []string{"alice"}}, ""},
		{"another service", call{service: "com.example.Other", method: "hello"}, ""},
		{"suffix interface and group", call{service: "com.shop.Orders", method: "place", group: "blue"}, "orders-blue"},
		{"suffix interface, other group", call{service: "com.shop.Orders", method: "place", group: "green"}, ""},
		{"the suffix alone is not a name", call{service: ".Orders", method: "place", group: "blue"}, ""},
		{"prefix interface, any method", call{service: "org.legacy.Billing", method: "anything"}, "legacy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tb.Match(c.c.request(), args(c.c.args))
			got := ""
			if r != nil {
				got = r.Cluster(0)
			}
			if got != c.want {
				t.Fatalf("cluster %q, want %q", got, c.want)
			}
		})
	}
}

func TestWeightedPick(t *testing.T) {
	tb, err := Compile(configs(t, table), "route_config", CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := tb.Match(call{service: "com.example.Greeter", method: "sayHi"}.request(), args(nil))
	counts := map[string]int{}
	for i := range uint64(100) {
		counts[r.Cluster(i)]++
	}
	if counts["a"] != 80 || counts["b"] != 20 {
		t.Fatalf("picks %v, want 80 a and 20 b", counts)
	}
}

func TestMatchUndecoded(t *testing.T) {
	cases := []struct {
		name, table string
		want        string // cluster, "refuse" or ""
	}{
		{"a service-level route", `
- {interface: "*", routes: [{match: {}, route: {cluster: svc}}]}`, "svc"},
		{"a method matcher that takes an empty name", `
- {interface: "*", routes: [{match: {method: {name: {safe_regex: {regex: ".*"}}}}, route: {cluster: svc}}]}`, "svc"},
		{"only method routes", `
- {interface: "*", routes: [{match: {method: {name: {exact: hello}}}, route: {cluster: svc}}]}`, "refuse"},
		{"a named interface, then a service-level route", `
- {interface: com.example.Greeter, routes: [{match: {}, route: {cluster: greeter}}]}
- {interface: "*", routes: [{match: {}, route: {cluster: svc}}]}`, "svc"},
		{"named interfaces only", `
- {interface: com.example.Greeter, routes: [{match: {}, route: {cluster: greeter}}]}`, "refuse"},
		{"no routes at all", `
- {interface: "*"}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := Compile(configs(t, c.table), "route_config", CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := tb.Match(&l7.Request{Proto: l7.Dubbo}, nil)
			got := ""
			switch {
			case r == nil:
			case r.Refusal() != "":
				got = "refuse"
			default:
				got = r.Cluster(0)
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestMatchAllocations(t *testing.T) {
	tb, _ := Compile(configs(t, table), "route_config", CompileOptions{})
	req := call{service: "com.example.Greeter", method: "getUser", version: "1.0.0", atts: [][2]string{{"x-user", "bob"}}}.request()
	var a Args = byteArgs{[]byte("alice"), []byte("15")}
	if n := testing.AllocsPerRun(100, func() {
		if tb.Match(req, a) == nil {
			t.Fatal("no route")
		}
	}); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func TestCompileErrors(t *testing.T) {
	known := func(n string) bool { return n != "nope" }
	cases := []struct{ name, table, want string }{
		{"no interface", `[{routes: [{match: {}, route: {cluster: a}}]}]`, `route_config[0].interface: required`},
		{"unknown cluster", `[{interface: "*", routes: [{match: {}, route: {cluster: nope}}]}]`,
			`route_config[0].routes[0].route.cluster: unknown cluster "nope"`},
		{"no action", `[{interface: "*", routes: [{match: {}, route: {}}]}]`,
			`route_config[0].routes[0].route: one of cluster and weighted_clusters is required`},
		{"a weighted cluster without a weight", `[{interface: "*", routes: [{match: {}, route: {weighted_clusters: {clusters: [{name: a}]}}}]}]`,
			`route_config[0].routes[0].route.weighted_clusters.clusters[0].weight: required`},
		{"an unknown weighted cluster", `[{interface: "*", routes: [{match: {}, route: {weighted_clusters: {clusters: [{name: nope, weight: 1}]}}}]}]`,
			`route_config[0].routes[0].route.weighted_clusters.clusters[0].name: unknown cluster "nope"`},
		{"a wrong total", `[{interface: "*", routes: [{match: {}, route: {weighted_clusters: {clusters: [{name: a, weight: 1}], total_weight: 2}}}]}]`,
			`route_config[0].routes[0].route.weighted_clusters.total_weight: 2 is not the sum of the weights, 1`},
		{"an unsupported weighted cluster field", `[{interface: "*", routes: [{match: {}, route: {weighted_clusters: {clusters: [{name: a, weight: 1, host_rewrite_literal: x}]}}}]}]`,
			`route_config[0].routes[0].route.weighted_clusters.clusters[0].host_rewrite_literal: not supported yet`},
		{"subsets", `[{interface: "*", routes: [{match: {}, route: {cluster: a, metadata_match: {filter_metadata: {envoy.lb: {v: "1"}}}}}]}]`,
			`route_config[0].routes[0].route.metadata_match: not supported yet`},
		{"a method without a name", `[{interface: "*", routes: [{match: {method: {}}, route: {cluster: a}}]}]`,
			`route_config[0].routes[0].match.method.name: required`},
		{"a bad regex", `[{interface: "*", routes: [{match: {method: {name: {safe_regex: {regex: "("}}}}, route: {cluster: a}}]}]`,
			`route_config[0].routes[0].match.method.name.safe_regex: invalid regex`},
		{"an empty range", `[{interface: "*", routes: [{match: {method: {name: {exact: a}, params_match: {"2": {range_match: {start: 5, end: 5}}}}}, route: {cluster: a}}]}]`,
			`route_config[0].routes[0].match.method.params_match[2].range_match: start 5 must be less than end 5`},
		{"a parameter without a matcher", `[{interface: "*", routes: [{match: {method: {name: {exact: a}, params_match: {"0": {}}}}, route: {cluster: a}}]}]`,
			`route_config[0].routes[0].match.method.params_match[0]: one of exact_match and range_match is required`},
		{"a header matcher without a name", `[{interface: "*", routes: [{match: {headers: [{exact_match: x}]}, route: {cluster: a}}]}]`,
			`route_config[0].routes[0].match.headers[0].name: required`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var list []*dubbov3.RouteConfiguration
			js, err := yaml.YAMLToJSON([]byte("route_config: " + c.table))
			if err != nil {
				t.Fatal(err)
			}
			var mrc dubbov3.MultipleRouteConfiguration
			if err := protojson.Unmarshal(js, &mrc); err != nil {
				t.Fatal(err)
			}
			list = mrc.GetRouteConfig()
			_, err = Compile(list, "route_config", CompileOptions{ClusterExists: known})
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("Compile = %v, want %q", err, c.want)
			}
		})
	}
}

func TestAllowlistCoversTheProtos(t *testing.T) {
	for _, err := range Allowlist.Verify((&dubbov3.RouteConfiguration{}).ProtoReflect().Descriptor()) {
		t.Error(err)
	}
}

package route

import (
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMirrorPolicies(t *testing.T) {
	tb := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /none}
    route: {cluster: c}
  - match: {prefix: /}
    route:
      cluster: c
      requestMirrorPolicies:
      - {cluster: m1}
      - {cluster: m2, runtimeFraction: {defaultValue: {numerator: 25}, runtimeKey: some.key}, traceSampled: false}
      - {clusterHeader: X-Mirror, disableShadowHostSuffixAppend: true}
      - {cluster: m4, runtimeFraction: {defaultValue: {numerator: 0, denominator: MILLION}}}
`)
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/none")}
	if r := tb.MatchRandom(req, 0); r.MirrorPolicies() != nil {
		t.Fatalf("a route without mirrors: %+v", r.MirrorPolicies())
	}
	req.Path = []byte("/x")
	ps := tb.MatchRandom(req, 0).MirrorPolicies()
	if len(ps) != 4 {
		t.Fatalf("%d policies", len(ps))
	}
	if ps[0].Cluster != "m1" || !ps[0].Fires(12345) || ps[0].TraceSampled != nil {
		t.Errorf("m1: %+v", ps[0])
	}
	// 25% of HUNDRED: 0..24 fire, 25..99 do not.
	if !ps[1].Fires(24) || ps[1].Fires(25) || !ps[1].Fires(100) || ps[1].TraceSampled == nil || *ps[1].TraceSampled {
		t.Errorf("m2: %+v", ps[1])
	}
	for r := uint64(0); r < 2_000_000; r += 997 {
		if ps[3].Fires(r) {
			t.Fatalf("a 0%% policy fired for %d", r)
		}
	}
	if c, ok := ps[2].TargetCluster(req); ok {
		t.Errorf("cluster_header without the header: %q", c)
	}
	req.Header.Set("x-mirror", "from-header")
	if c, ok := ps[2].TargetCluster(req); !ok || c != "from-header" || ps[2].ClusterHeader != "x-mirror" {
		t.Errorf("cluster_header: %q %v", c, ok)
	}
	if c, ok := ps[0].TargetCluster(req); !ok || c != "m1" {
		t.Errorf("cluster: %q %v", c, ok)
	}
	for in, want := range map[string]string{
		"reviews.ns.svc.cluster.local:9080": "reviews.ns.svc.cluster.local-shadow:9080",
		"reviews":                           "reviews-shadow",
		"[::1]:80":                          "[::1]-shadow:80",
		"[::1]":                             "[::1]-shadow",
		"10.0.0.1:8080":                     "10.0.0.1-shadow:8080",
	} {
		if got := string(ps[0].ShadowAuthority(nil, []byte(in))); got != want {
			t.Errorf("ShadowAuthority(%q) = %q, want %q", in, got, want)
		}
		if got := string(ps[2].ShadowAuthority(nil, []byte(in))); got != in {
			t.Errorf("with disable_shadow_host_suffix_append: %q, want %q", got, in)
		}
	}
}

func TestMirrorPoliciesOnWeightedViews(t *testing.T) {
	tb := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route:
      weightedClusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 1}]}
      requestMirrorPolicies: [{cluster: m}]
`)
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/")}
	r := tb.MatchRandom(req, 0)
	for i := range uint64(2) {
		if ps := r.Pick(i).MirrorPolicies(); len(ps) != 1 || ps[0].Cluster != "m" {
			t.Errorf("pick %d: %+v", i, ps)
		}
	}
}

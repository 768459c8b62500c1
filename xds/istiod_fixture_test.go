package xds

import (
	"net/netip"
	"strings"
	"testing"
)

// istiodReviewsDir is a copy of ../../shared/istiod/reviews: the LDS, CDS
// and EDS istiod (1.31 line) sends a waypoint for the reviews service.
const istiodReviewsDir = "testdata/istiod/reviews"

// TestIstiodFixture takes the whole reviews fixture, RBAC and tracing
// included, and decodes it into the layout the data path serves.
func TestIstiodFixture(t *testing.T) {
	r, err := LoadResourceDir(istiodReviewsDir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := BuildResources("1", r)
	if err != nil {
		t.Fatal(err)
	}
	for _, fc := range snap.Listener("main_internal").FilterChains {
		switch fc.Name {
		case "inbound-vip|9080|http|reviews.mesh.local", "inbound-vip|9090|http|reviews.mesh.local":
			if n := strings.Count(strings.Join(fc.HTTP.FilterNames, " "), "envoy.filters.http.rbac"); n != 2 || fc.HTTP.Tracing != nil {
				t.Errorf("%s: %d RBAC filters (want 2), tracing %v (no provider: none)", fc.Name, n, fc.HTTP.Tracing)
			}
		case "inbound-vip|9300|tcp|reviews.mesh.local":
			if len(fc.RBAC) != 2 {
				t.Errorf("%s: %d network RBAC filters, want 2", fc.Name, len(fc.RBAC))
			}
		}
	}
	e := snap.HBONEEntry()
	if e == nil || e.Name != "connect_terminate" || e.HBONE.Target != "main_internal" || e.HBONE.MaxConcurrentStreams != 100 ||
		e.HBONE.KeepAliveInterval.String() != "10s" || len(e.HBONE.PeerSAN.SANPrefixes) != 1 {
		t.Errorf("HBONE entry = %+v", e)
	}
	v1 := snap.Cluster("inbound-vip|9080|http/v1|reviews.mesh.local")
	if len(v1.Endpoints) != 1 || v1.Endpoints[0].Address.String() != "127.10.0.11:9080" || v1.Transport != TransportHBONE ||
		v1.HBONEPortOrDefault() != 15008 || len(v1.UpstreamTLS.SANPrefixes) != 2 || v1.LBPolicy != LBPolicyLeastRequest {
		t.Errorf("folded v1 cluster = %+v", v1)
	}
	if c := snap.Cluster("encap"); !c.OriginalDestination || c.Refusal != "" || len(c.Endpoints) != 0 {
		t.Errorf("encap = %+v", c)
	}
	for _, name := range []string{"main_internal", "inner_connect_originate", "connect_originate"} {
		if c := snap.Cluster(name); c.Refusal == "" {
			t.Errorf("cluster %s is not refused by the data path", name)
		}
	}
	mi := snap.Listener("main_internal")
	for _, tc := range []struct {
		dst   string
		sniff bool
	}{{"127.10.0.10:9080", false}, {"127.10.0.10:9300", false}, {"127.10.0.11:8000", false}} {
		if got := mi.HTTPInspector.Enabled(netip.MustParseAddrPort(tc.dst)) && mi.Sniffs(netip.MustParseAddrPort(tc.dst)); got != tc.sniff {
			t.Errorf("sniffs %s = %v", tc.dst, got)
		}
	}
	if !mi.HTTPInspector.Enabled(netip.MustParseAddrPort("127.10.0.11:8000")) {
		t.Error("http_inspector disabled on a port filter_disabled does not name")
	}
}

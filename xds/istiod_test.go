package xds

import (
	"encoding/json"
	"net/netip"
	"os"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// istiodListenersFile is a copy of ../../shared/istiod/reviews/listeners.json:
// the LDS istiod (1.31 line) sends a waypoint for the reviews service.
const istiodListenersFile = "testdata/istiod/reviews/listeners.json"

// TestIstiodMainInternalMatcher compiles the filter_chain_matcher of the
// main_internal listener istiod writes. The rest of that listener (HTTP
// connection managers, RBAC) is not supported yet, so only the matcher is
// taken out of the file, with stand-in chains for the names it refers to.
func TestIstiodMainInternalMatcher(t *testing.T) {
	data, err := os.ReadFile(istiodListenersFile)
	if err != nil {
		t.Fatal(err)
	}
	var lds struct {
		Resources []struct {
			Name               string                  `json:"name"`
			FilterChains       []struct{ Name string } `json:"filterChains"`
			FilterChainMatcher json.RawMessage         `json:"filterChainMatcher"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(data, &lds); err != nil {
		t.Fatal(err)
	}
	var (
		pb     xdsmatcherv3.Matcher
		chains = map[string]*FilterChain{}
		found  bool
	)
	for _, r := range lds.Resources {
		if r.Name != "main_internal" {
			continue
		}
		found = true
		if err := protojson.Unmarshal(r.FilterChainMatcher, &pb); err != nil {
			t.Fatal(err)
		}
		for _, fc := range r.FilterChains {
			chains[fc.Name] = &FilterChain{Name: fc.Name}
		}
	}
	if !found {
		t.Fatalf("no main_internal listener in %s", istiodListenersFile)
	}
	m, err := compileMatcher(&pb, chains)
	if err != nil {
		t.Fatalf("compileMatcher: %v", err)
	}

	for _, tc := range []struct {
		dst  string
		want string
	}{
		{"127.10.0.10:9080", "inbound-vip|9080|http|reviews.mesh.local"},
		{"127.10.0.10:9090", "inbound-vip|9090|http|reviews.mesh.local"},
		{"127.10.0.10:9300", "inbound-vip|9300|tcp|reviews.mesh.local"},
		{"127.10.0.10:9999", "<nil>"},
		{"127.10.0.11:9080", "<nil>"}, // a pod address: not a service VIP
	} {
		in := MatchInput{Destination: netip.MustParseAddrPort(tc.dst), Source: netip.MustParseAddrPort("127.0.0.9:40000")}
		c, ok := m.match(&in)
		if got := chainName(c); got != tc.want || ok != (tc.want != "<nil>") {
			t.Errorf("match(%s) = %s, %v; want %s", tc.dst, got, ok, tc.want)
		}
	}
}

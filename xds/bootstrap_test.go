package xds

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

const sampleBootstrap = "testdata/bootstrap.yaml"

func TestSampleBootstrap(t *testing.T) {
	b, err := LoadBootstrapFile(sampleBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	if b.AdminAddress != "127.0.0.1:15000" {
		t.Errorf("AdminAddress = %q", b.AdminAddress)
	}
	if b.Raw.GetNode().GetId() == "" {
		t.Error("node not kept")
	}

	var names []string
	for _, l := range b.Snapshot.Listeners {
		names = append(names, l.Name)
	}
	if diff := cmp.Diff([]string{"main_internal", "local_echo"}, names); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	main, echo := b.Snapshot.Listener("main_internal"), b.Snapshot.Listener("local_echo")
	if !main.Internal || main.Address.IsValid() || echo.Internal || echo.Address != ap("127.0.0.1:15100") {
		t.Errorf("addresses: main_internal %v %v, local_echo %v %v", main.Internal, main.Address, echo.Internal, echo.Address)
	}

	// Each service VIP:port selects its chain, whose cluster exists.
	for _, tc := range []struct {
		l    *Listener
		dst  string
		want string
	}{
		{main, "127.10.0.10:9300", "inbound-vip|9300|tcp|reviews.mesh.local"},
		{main, "127.10.0.20:9400", "inbound-vip|9400|tcp|ratings.mesh.local"},
		{main, "127.10.0.20:9300", "<nil>"},
		{echo, "127.0.0.1:15100", "echo"},
	} {
		c := tc.l.Match(MatchInput{Destination: netip.MustParseAddrPort(tc.dst)})
		if got := chainName(c); got != tc.want {
			t.Errorf("%s: Match(%s) = %s, want %s", tc.l.Name, tc.dst, got, tc.want)
			continue
		}
		if c != nil && b.Snapshot.Cluster(c.TCPProxy.Cluster) == nil {
			t.Errorf("%s: chain %s: no cluster %q", tc.l.Name, c.Name, c.TCPProxy.Cluster)
		}
	}

	want := map[string]*Cluster{
		"inbound-vip|9300|tcp|reviews.mesh.local": {
			Name:           "inbound-vip|9300|tcp|reviews.mesh.local",
			ConnectTimeout: 10 * time.Second,
			Transport:      TransportHBONE,
			Endpoints:      []Endpoint{{Address: ap("127.10.0.11:9300"), Weight: 1}},
			UpstreamTLS:    UpstreamTLS{SANPrefixes: []string{"spiffe://cluster.local/ns/default/sa/"}},
		},
		"inbound-vip|9400|tcp|ratings.mesh.local": {
			Name:           "inbound-vip|9400|tcp|ratings.mesh.local",
			ConnectTimeout: 5 * time.Second,
			Transport:      TransportHBONE,
			Endpoints: []Endpoint{{
				Address:  ap("127.10.0.21:9400"),
				Weight:   1,
				Identity: spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"},
			}},
		},
		"echo": {
			Name:           "echo",
			ConnectTimeout: time.Second,
			Transport:      TransportPlaintext,
			Endpoints:      []Endpoint{{Address: ap("127.0.0.1:18080"), Weight: 1}},
		},
	}
	if diff := cmp.Diff(want, b.Snapshot.Clusters, cmpOpts, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Metadata"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

func TestBootstrapJSONMatchesYAML(t *testing.T) {
	y, err := os.ReadFile(sampleBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := ParseBootstrap(y, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ParseBootstrap(append([]byte("\n  "), j...), "json")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromYAML.Raw, fromJSON.Raw, protocmp.Transform()); diff != "" {
		t.Errorf("bootstrap (-yaml +json):\n%s", diff)
	}
}

func TestLoadBootstrapFileMissing(t *testing.T) {
	_, err := LoadBootstrapFile("testdata/nope.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/nope.yaml") {
		t.Errorf("LoadBootstrapFile error = %v, want one naming the file", err)
	}
}

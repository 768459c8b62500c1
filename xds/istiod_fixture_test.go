package xds

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// istiodReviewsDir is a copy of ../../shared/istiod/reviews: the LDS, CDS
// and EDS istiod (1.31 line) sends a waypoint for the reviews service.
const istiodReviewsDir = "testdata/istiod/reviews"

// TestIstiodFixture takes the whole reviews fixture, RBAC and tracing
// included, and decodes it into the layout the data path serves: every
// listener, every filter chain with each of its network and HTTP filters,
// every cluster and endpoint set.
func TestIstiodFixture(t *testing.T) {
	r, err := LoadResourceDir(istiodReviewsDir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := BuildResources("1", r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Listeners) != 5 || len(r.Clusters) != 23 || len(r.Endpoints) != 18 {
		t.Errorf("fixture has %d listeners, %d clusters, %d endpoint sets; want 5, 23, 18", len(r.Listeners), len(r.Clusters), len(r.Endpoints))
	}
	for _, c := range r.Clusters {
		if snap.Cluster(c.GetName()) == nil {
			t.Errorf("cluster %s not decoded", c.GetName())
		}
	}
	for _, cla := range r.Endpoints {
		if c := snap.Cluster(cla.GetClusterName()); c == nil || (len(c.Endpoints) == 0 && c.Refusal == "") {
			t.Errorf("endpoints of %s not folded into a cluster", cla.GetClusterName())
		}
	}
	chains := 0
	for _, l := range r.Listeners {
		dl := snap.Listener(l.GetName())
		switch {
		case dl == nil:
			t.Errorf("listener %s not decoded", l.GetName())
			continue
		case l.GetName() == "connect_terminate":
			continue // the HBONE entry, checked below
		}
		decoded := map[string]*FilterChain{}
		for _, fc := range dl.FilterChains {
			decoded[fc.Name] = fc
		}
		for _, fc := range l.GetFilterChains() {
			chains++
			got, want := decodedFilters(decoded[fc.GetName()]), rawFilters(t, fc)
			if got != want {
				t.Errorf("listener %s chain %q decoded as\n  %s\nwant\n  %s", l.GetName(), fc.GetName(), got, want)
			}
		}
	}
	if chains != 8 {
		t.Errorf("%d filter chains compared, want 8", chains)
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

// decodedFilters lists a decoded chain's filters as the config named them:
// network filters (leading no-ops, RBAC, the terminal one), then the HTTP
// filters of an HttpConnectionManager.
func decodedFilters(fc *FilterChain) string {
	if fc == nil {
		return "(no such chain)"
	}
	var nf []string
	nf = append(nf, fc.Leading...)
	for range fc.RBAC {
		nf = append(nf, "envoy.filters.network.rbac")
	}
	switch {
	case fc.TCPProxy != nil:
		nf = append(nf, "envoy.filters.network.tcp_proxy")
	case fc.HTTP != nil:
		nf = append(nf, "envoy.filters.network.http_connection_manager")
	}
	var hf []string
	if fc.HTTP != nil {
		hf = fc.HTTP.FilterNames
	}
	return fmt.Sprintf("network %v http %v", nf, hf)
}

// rawFilters is decodedFilters of the chain as istiod sent it. A network
// RBAC filter counts wherever it stands: the decoder keeps them apart.
func rawFilters(t *testing.T, fc *listenerv3.FilterChain) string {
	var leading, rbac, terminal, hf []string
	for i, f := range fc.GetFilters() {
		switch {
		case f.GetName() == "envoy.filters.network.rbac":
			rbac = append(rbac, f.GetName())
		case i < len(fc.GetFilters())-1:
			leading = append(leading, f.GetName())
		default:
			terminal = append(terminal, f.GetName())
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
				for _, h := range hcm.GetHttpFilters() {
					hf = append(hf, h.GetName())
				}
			}
		}
	}
	return fmt.Sprintf("network %v http %v", append(append(leading, rbac...), terminal...), hf)
}

// TestIstiodFixtureTracing: the fixture's HttpConnectionManager tracing
// names no provider (the mesh has no tracing extension provider), so Envoy
// has no tracer and the waypoint makes no spans; the block still decodes
// whole. Given a provider, as istiod adds for a mesh with an
// OpenTelemetry extension provider, its sampling and custom tags are
// taken: every tag but the four RBAC dry-run metadata tags, which are
// accepted and never set (the fixture has no shadow rules, so Envoy sets
// none of them either).
func TestIstiodFixtureTracing(t *testing.T) {
	r, err := LoadResourceDir(istiodReviewsDir)
	if err != nil {
		t.Fatal(err)
	}
	wantTags := map[string][]string{}
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageName() != "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					t.Fatal(err)
				}
				tr := hcm.GetTracing()
				if tr == nil {
					continue
				}
				if tr.GetProvider() != nil {
					t.Fatalf("chain %q: the fixture names a tracing provider", fc.GetName())
				}
				metadata := 0
				for _, tag := range tr.GetCustomTags() {
					if tag.GetMetadata() != nil {
						metadata++
						continue
					}
					wantTags[fc.GetName()] = append(wantTags[fc.GetName()], tag.GetTag())
				}
				if metadata != 4 || len(wantTags[fc.GetName()]) != 23 {
					t.Errorf("chain %q: %d metadata tags and %d others, want 4 and 23", fc.GetName(), metadata, len(wantTags[fc.GetName()]))
				}
				otel, err := anypb.New(&tracev3.OpenTelemetryConfig{ServiceName: "waypoint.default", GrpcService: &corev3.GrpcService{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "outbound|9080||reviews.mesh.local"}}}})
				if err != nil {
					t.Fatal(err)
				}
				tr.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}}
				a, err := anypb.New(&hcm)
				if err != nil {
					t.Fatal(err)
				}
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			}
		}
	}
	if len(wantTags) != 3 {
		t.Fatalf("tracing on %d chains, want 3 (the two service HTTP chains and direct-http)", len(wantTags))
	}

	plain, err := BuildResources("1", mustLoad(t))
	if err != nil {
		t.Fatal(err)
	}
	traced, err := BuildResources("2", r)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range wantTags {
		if tr := chainNamed(plain, name).HTTP.Tracing; tr != nil {
			t.Errorf("chain %q as istiod sent it: tracing %+v, want none (no provider)", name, tr)
		}
		tr := chainNamed(traced, name).HTTP.Tracing
		if tr == nil {
			t.Fatalf("chain %q with a provider: no tracing", name)
		}
		var got []string
		for _, tag := range tr.Tags {
			got = append(got, tag.Name)
		}
		if tr.Cluster != "outbound|9080||reviews.mesh.local" || tr.ServiceName != "waypoint.default" || tr.RandomSampling != 1 ||
			tr.OverallSampling != 100 || tr.ClientSampling != 100 || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("chain %q: tracing %+v, tags %v; want istiod's sampling (random 1%%, overall and client 100%%) and tags %v", name, tr, got, want)
		}
	}
}

func mustLoad(t *testing.T) *Resources {
	t.Helper()
	r, err := LoadResourceDir(istiodReviewsDir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chainNamed(s *Snapshot, name string) *FilterChain {
	for _, fc := range s.Listener("main_internal").FilterChains {
		if fc.Name == name {
			return fc
		}
	}
	return &FilterChain{HTTP: &HTTPConnectionManager{}}
}

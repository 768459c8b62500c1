package route

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"
)

// The inline route configurations of the reviews service's HTTP (9080) and
// gRPC (9090) chains, as istiod sent them (../../../shared/istiod/reviews).
const istiodFixture = "testdata/istiod_reviews_routes.json"

const (
	reviewsDefault = "inbound-vip|9080|http|reviews.mesh.local"
	reviewsV1      = "inbound-vip|9080|http/v1|reviews.mesh.local"
	reviewsV2      = "inbound-vip|9080|http/v2|reviews.mesh.local"
)

func loadIstiodRoutes(tb testing.TB) []*routev3.RouteConfiguration {
	tb.Helper()
	raw, err := os.ReadFile(istiodFixture)
	if err != nil {
		tb.Fatal(err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		tb.Fatal(err)
	}
	var out []*routev3.RouteConfiguration
	for _, it := range items {
		rc := &routev3.RouteConfiguration{}
		if err := protojson.Unmarshal(it, rc); err != nil {
			tb.Fatal(err)
		}
		out = append(out, rc)
	}
	return out
}

func compileIstiod(tb testing.TB, rc *routev3.RouteConfiguration) *Table {
	tb.Helper()
	known := map[string]bool{reviewsDefault: true, reviewsV1: true, reviewsV2: true}
	tbl, err := Compile(rc, CompileOptions{
		ClusterExists:   func(name string) bool { return known[name] },
		PerFilterConfig: testPerFilter,
	})
	if err != nil {
		tb.Fatalf("Compile(%s): %v", rc.GetName(), err)
	}
	return tbl
}

func TestIstiodReviews(t *testing.T) {
	istioRetry := &RetryPolicy{
		RetryOn:                  RetryConnectFailure | RetryRefusedStream | RetryGRPCUnavailable | RetryGRPCCancelled | RetryRetriableStatusCodes,
		NumRetries:               2,
		BaseInterval:             25 * time.Millisecond,
		MaxInterval:              250 * time.Millisecond,
		PreviousHosts:            true,
		HostSelectionMaxAttempts: 5,
	}
	apiRetry := &RetryPolicy{
		RetryOn:                  Retry5xx | RetryConnectFailure,
		NumRetries:               3,
		PerTryTimeout:            time.Second,
		BaseInterval:             25 * time.Millisecond,
		MaxInterval:              250 * time.Millisecond,
		PreviousHosts:            true,
		HostSelectionMaxAttempts: 5,
	}
	for _, rc := range loadIstiodRoutes(t) {
		t.Run(rc.GetName(), func(t *testing.T) {
			tbl := compileIstiod(t, rc)
			authority := "reviews.mesh.local:9080"

			// end-user: jason → v2.
			r := tbl.Match(newReq("GET", authority, "/reviews/1", "end-user: jason"))
			if r == nil || r.Action() != ActionCluster || r.Cluster() != reviewsV2 {
				t.Fatalf("jason: got %+v, want cluster %s", r, reviewsV2)
			}
			if r.Timeout() != 0 {
				t.Errorf("jason: timeout %v, want 0 (disabled)", r.Timeout())
			}
			if max, _, honor := r.GRPCTimeout(); !honor || max != 0 {
				t.Errorf("jason: GRPCTimeout = %v, %v; want honored without cap", max, honor)
			}
			if diff := cmp.Diff(istioRetry, r.RetryPolicy(), cmpopts.IgnoreUnexported(RetryPolicy{})); diff != "" {
				t.Errorf("jason retry policy (-want +got):\n%s", diff)
			}

			// /api/x → 80/20, prefix rewrite, 3 s, its own retry policy.
			r = tbl.Match(newReq("GET", authority, "/api/x?q=1"))
			if r == nil || r.Action() != ActionWeightedClusters {
				t.Fatalf("/api/x: got %+v, want weighted clusters", r)
			}
			var got []string
			for _, c := range r.Weighted().Clusters {
				got = append(got, c.Name)
			}
			if diff := cmp.Diff([]string{reviewsV1, reviewsV2}, got); diff != "" {
				t.Errorf("/api/x clusters (-want +got):\n%s", diff)
			}
			if w := r.Weighted(); w.Clusters[0].Weight != 80 || w.Clusters[1].Weight != 20 || w.Total != 100 {
				t.Errorf("/api/x weights %d/%d of %d, want 80/20 of 100", w.Clusters[0].Weight, w.Clusters[1].Weight, w.Total)
			}
			if r.PrefixRewrite() != "/v1/" || r.Timeout() != 3*time.Second {
				t.Errorf("/api/x: prefix_rewrite %q timeout %v, want /v1/ and 3s", r.PrefixRewrite(), r.Timeout())
			}
			if max, _, honor := r.GRPCTimeout(); !honor || max != 3*time.Second {
				t.Errorf("/api/x: GRPCTimeout = %v, %v; want 3s", max, honor)
			}
			if diff := cmp.Diff(apiRetry, r.RetryPolicy(), cmpopts.IgnoreUnexported(RetryPolicy{})); diff != "" {
				t.Errorf("/api/x retry policy (-want +got):\n%s", diff)
			}
			req := newReq("GET", authority, "/api/x?q=1")
			if !r.RewritePath(req, false) || string(req.Path) != "/v1/x?q=1" {
				t.Errorf("/api/x rewritten to %q, want /v1/x?q=1", req.Path)
			}
			if v := r.Pick(99); v.Cluster() != reviewsV2 {
				t.Errorf("Pick(99) = %s, want v2", v.Cluster())
			}

			// /teapot → the fault filter's config.
			r = tbl.Match(newReq("GET", authority, "/teapot"))
			if r == nil || r.Cluster() != reviewsDefault {
				t.Fatalf("/teapot: got %+v", r)
			}
			f, ok := r.FilterConfig("envoy.filters.http.fault").(*faultv3.HTTPFault)
			if !ok || f.GetAbort().GetHttpStatus() != 418 {
				t.Errorf("/teapot fault config = %v, want an abort with 418", r.FilterConfig("envoy.filters.http.fault"))
			}
			if d := r.Decorator().GetOperation(); d != "reviews.mesh.local:9080/teapot" {
				t.Errorf("/teapot decorator %q", d)
			}
			if r.Metadata().GetFilterMetadata()["istio"] == nil {
				t.Error("/teapot metadata lost")
			}

			// Anything else → the default cluster, without fault config.
			for _, p := range []string{"/", "/reviews/2", "/teapot/more", "/apix"} {
				r = tbl.Match(newReq("GET", authority, p, "end-user: alice"))
				if r == nil || r.Cluster() != reviewsDefault || r.FilterConfig("envoy.filters.http.fault") != nil {
					t.Errorf("%s: got %+v, want %s", p, r, reviewsDefault)
				}
			}
		})
	}
}

func TestIstiodUnknownCluster(t *testing.T) {
	rc := loadIstiodRoutes(t)[0]
	_, err := Compile(rc, CompileOptions{
		ClusterExists:   func(name string) bool { return name != reviewsV1 },
		PerFilterConfig: testPerFilter,
	})
	const want = `virtual_hosts[0].routes[1].route.weighted_clusters.clusters[0].name: unknown cluster "inbound-vip|9080|http/v1|reviews.mesh.local"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

package live

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// compatCase is one case of the catalogue of what users put behind a waypoint: Istio or
// Gateway API resources applied through the API server on top of the base world (see
// catalogueWorld), rendered by the live istiod, taken by the waypoint (ACKed) and served as
// Envoy would serve them (check).
//
// A case whose config needs a capability not built yet names the issue that builds it
// (waitsOn) and the text of the waypoint's refusal (nack, a part of what istiod's syncz shows
// as the push's lastError): it asserts that refusal, and that the last good config keeps
// serving, until that issue turns it into a case like the others.
type compatCase struct {
	name      string
	resources string // what is applied, in words (the table's column)
	checks    string // what is checked, in words
	yaml      string // applied over the base world; {{NS}} and {{NET}} expanded
	check     func(t *testing.T, w *world, b *base)
	waitsOn   string // e.g. "#13 (JWT)"
	nack      string
	// setup, when set, runs before yaml is applied (a server istiod reads).
	setup func(t *testing.T, w *world)
	// waypointLabels, when set, are added to the waypoint pod's labels (its locality).
	waypointLabels map[string]string
	// waypointEnv, when set, is added to the waypoint process's environment (NAME=VALUE).
	waypointEnv []string
}

// catalogue holds every case; files catalogue_*_test.go add theirs in init.
var catalogue []compatCase

var compatDoc = flag.String("compat-doc", "", "write the catalogue's table with this run's results to this file (docs/istio-compat.md)")

// base is the world every case starts from: Service reviews (http 9080, grpc 9090, tcp 9300,
// istio.io/use-waypoint) over workloads reviews-v1 and reviews-v2 (labels app=reviews,
// version=v1|v2, service account bookinfo-reviews), with an HTTP, a gRPC and a TCP echo each.
type base struct {
	vip    string // reviews' ClusterIP
	v1, v2 *pod
}

// url is http://VIP:9080 + path.
func (b *base) url(path string) string { return "http://" + b.vip + ":9080" + path }

// catalogueWorld makes the base world in a world of its own and waits until a request
// through the waypoint reaches a workload.
func catalogueWorld(t *testing.T, k int, ns string, waypointLabels map[string]string, waypointEnv ...string) (*world, *base) {
	w := newWorld(t, k, ns, waypointLabels, waypointEnv...)
	b := &base{}
	labels := func(v string) map[string]string { return map[string]string{"app": "reviews", "version": v} }
	b.v1 = w.workload("reviews-v1", "bookinfo-reviews", labels("v1"), 9080)
	b.v2 = w.workload("reviews-v2", "bookinfo-reviews", labels("v2"), 9080)
	for _, p := range []*pod{b.v1, b.v2} {
		w.grpcEcho(p, 9090)
		w.tcpEcho(p, 9300)
	}
	w.apply(`
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: grpc, port: 9090}
  - {name: tcp, port: 9300}
`)
	b.vip = w.serviceVIP("reviews")
	w.eventually(30*time.Second, "a request through the waypoint", func() error {
		code, _, err := w.call("productpage", "GET", b.url("/"), nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	w.synced()
	return w, b
}

// caseResult is a case's outcome in this run, for the table.
type caseResult struct {
	c      compatCase
	result string
}

func TestCatalogue(t *testing.T) {
	var mu sync.Mutex
	var results []caseResult
	names := map[string]bool{}
	t.Run("case", func(t *testing.T) {
		for i, c := range catalogue {
			if names[c.name] {
				t.Fatalf("two cases named %s", c.name)
			}
			names[c.name] = true
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				t.Cleanup(func() {
					r := "passes"
					switch {
					case t.Failed():
						r = "FAILS"
					case t.Skipped():
						return
					case c.waitsOn != "":
						r = fmt.Sprintf("waits on %s: NACK `%s`", c.waitsOn, c.nack)
					}
					mu.Lock()
					results = append(results, caseResult{c, r})
					mu.Unlock()
				})
				w, b := catalogueWorld(t, 10+i, "cat-"+c.name, c.waypointLabels, c.waypointEnv...)
				if c.waitsOn != "" {
					w.apply(c.yaml)
					w.refused(c.nack)
					// The last good config keeps serving.
					if code, _, err := w.call("productpage", "GET", b.url("/"), nil); err != nil || code != 200 {
						t.Errorf("after the refusal: %d %v", code, err)
					}
					if n := w.metric("waypoint_xds_update_rejected_total"); n == 0 {
						t.Errorf("the refusal is not counted in waypoint_xds_update_rejected_total")
					}
					return
				}
				if c.setup != nil {
					c.setup(t, w)
				}
				w.applied(c.yaml)
				c.check(t, w, b)
				w.synced()
			})
		}
	})
	if *compatDoc != "" {
		if err := writeCompatDoc(*compatDoc, results); err != nil {
			t.Fatal(err)
		}
	}
}

// refused waits until istiod shows a push to the waypoint refused with a lastError holding
// nack.
func (w *world) refused(nack string) {
	w.t.Helper()
	var last string
	w.eventually(30*time.Second, "the waypoint refuses the push", func() error {
		s, ok, err := env.cluster.ProxySync(context.Background(), w.proxyID())
		if err != nil || !ok {
			return fmt.Errorf("syncz: %v %v", ok, err)
		}
		for _, r := range s.Resources {
			if r.LastError != "" {
				last = r.LastError
				if strings.Contains(r.LastError, nack) {
					return nil
				}
			}
		}
		return fmt.Errorf("no refusal with %q yet (last error: %q)", nack, last)
	})
}

// writeCompatDoc writes the catalogue's table (docs/istio-compat.md).
func writeCompatDoc(path string, results []caseResult) error {
	sort.Slice(results, func(i, j int) bool { return results[i].c.name < results[j].c.name })
	var b strings.Builder
	passing, waiting, failing := 0, 0, 0
	for _, r := range results {
		switch {
		case r.result == "passes":
			passing++
		case strings.HasPrefix(r.result, "waits"):
			waiting++
		default:
			failing++
		}
	}
	fmt.Fprintf(&b, `# What the waypoint takes from a live istiod

Generated by the catalogue of e2e/cluster/live (TestCatalogue): each case is a small world of
Kubernetes, Istio and Gateway API resources applied through a local API server, rendered by a
live istiod (%s, built from istio.io/istio %s), pushed to the waypoint
binary over TLS with a TokenRequest token, and checked with traffic from HBONE sources through the
waypoint to workloads behind ztunnel stand-ins. Every case asserts that istiod's pushes are
ACKed (its /debug/syncz) and the behaviour below; a case waiting on another issue asserts the
waypoint's refusal (the NACK text, shown in syncz as the push's lastError, and counted in
waypoint_xds_update_rejected_total) and that the last good config keeps serving.

Regenerate: `+"`make e2e-istio COMPAT_DOC=1`"+` (or `+"`cd e2e/cluster && go test ./live -run TestCatalogue -args -compat-doc ../../docs/istio-compat.md`"+`).

**%d cases: %d pass, %d wait on other issues, %d fail.**

The base world of every case: namespace (ambient) with a Gateway `+"`waypoint`"+` of class
`+"`istio-waypoint`"+`; Service `+"`reviews`"+` (ports http 9080, grpc 9090, tcp 9300, label
`+"`istio.io/use-waypoint: waypoint`"+`) selecting WorkloadEntries reviews-v1 and reviews-v2 on
loopback, each behind its own ztunnel stand-in.

| case | resources | what is checked | result |
|---|---|---|---|
`, env.bins.IstioVersion, env.bins.IstioModuleRef, len(results), passing, waiting, failing)
	cell := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "|", "\\|") }
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.c.name, cell(r.c.resources), cell(r.c.checks), cell(r.result))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

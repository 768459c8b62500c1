package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/gowaypoint/waypoint/filters/all"
	"github.com/gowaypoint/waypoint/xds"
)

// TestConfigBuilds checks that both versions of the config are ones the
// waypoint accepts, as the soak pushes them, and that they differ where the
// soak says they do.
func TestConfigBuilds(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	eps := endpointsJSON([]netip.Addr{podAddr(0), podAddr(251)})
	for v, name := range configNames {
		t.Run(name, func(t *testing.T) {
			r := &xds.Resources{}
			for _, doc := range []string{listenersJSON(v, logPath), clustersJSON(v), eps} {
				ms, err := xds.ParseResourceList([]byte(doc))
				if err != nil {
					t.Fatalf("%v in\n%s", err, doc)
				}
				for _, m := range ms {
					if err := r.Add(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(r.Listeners) != 1 || len(r.Clusters) != 2 || len(r.Endpoints) != 2 {
				t.Fatalf("%d listeners, %d clusters, %d endpoints; want 1, 2, 2", len(r.Listeners), len(r.Clusters), len(r.Endpoints))
			}
			snap, err := xds.BuildResources("1", r)
			if err != nil {
				t.Fatalf("the waypoint refuses version %s: %v", name, err)
			}
			snap.Close()
		})
	}
	a, b := listenersJSON(0, logPath), listenersJSON(1, logPath)
	for _, c := range []struct {
		doc, want string
		has       bool
	}{
		{a, `"value": "a"`, true}, {b, `"value": "b"`, true},
		{a, "envoy.filters.http.rbac", false}, {b, "envoy.filters.http.rbac", true},
		{b, idClient.String(), true},
		{clustersJSON(0), "ROUND_ROBIN", true}, {clustersJSON(1), "LEAST_REQUEST", true},
		{eps, `"127.79.1.2"`, true},
	} {
		if strings.Contains(c.doc, c.want) != c.has {
			t.Errorf("contains %q: %v, want %v", c.want, !c.has, c.has)
		}
	}
}

func TestPodAddresses(t *testing.T) {
	for _, c := range []struct {
		i    int
		want string
	}{{0, "127.79.0.1"}, {249, "127.79.0.250"}, {250, "127.79.1.1"}, {maxPodIPs - 1, "127.79.249.250"}} {
		if got := podAddr(c.i).String(); got != c.want {
			t.Errorf("podAddr(%d) = %s, want %s", c.i, got, c.want)
		}
	}
	o := options{endpoints: 20, churn: 2, churnEvery: 1e9, grace: 5e9}
	// 20 live, and 2 a second serving 5 s of grace and up to 5 s of shutdown, twice over.
	if got := podSlots(o); got != 2*(20+2*11) {
		t.Errorf("podSlots = %d, want %d", got, 2*(20+2*11))
	}
	o.churn = 0
	if got := podSlots(o); got != 40 {
		t.Errorf("podSlots without churn = %d, want 40", got)
	}
}

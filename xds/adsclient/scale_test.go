package adsclient

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// scaleServices is past where istiod's LDS for a namespace waypoint
// outgrows gRPC's default 4 MiB receive limit (about 3.9 kB of
// main_internal per Service).
const scaleServices = 1200

// A namespace waypoint's push for 1,200 Services, whose main_internal
// listener alone is over 4 MiB, is taken whole: every Service's cluster
// with its endpoint and its filter chain. gRPC refuses a message over
// 4 MiB unless told otherwise, and the stream broke on the LDS at each
// attempt (received message larger than max), so that the waypoint never
// had the Services past that size; Istio's agent and Envoy take any size.
func TestLargePush(t *testing.T) {
	r := xdstest.ScaleResources(t, scaleServices)
	for _, l := range r.Listeners {
		if l.GetName() == "main_internal" && proto.Size(l) <= 4<<20 {
			t.Fatalf("main_internal is %d bytes: not past 4 MiB", proto.Size(l))
		}
	}
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) {
			addr := fmt.Sprintf("127.36.0.%d:15010", 10+i)
			cp := startServer(t, addr, r)
			defer cp.stop()
			losses := &lossCounter{}
			c := runClient(t, addr, Config{Delta: delta, InitialFetchTimeout: 30 * time.Second, BackoffBase: 20 * time.Millisecond,
				Logger: slog.New(losses)})
			waitReady(t, c, 60*time.Second, "not ready")
			if c.Snapshot() == nil {
				t.Fatalf("no config applied within the initial fetch timeout; %d streams lost", losses.n.Load())
			}
			checkScale(t, c.Snapshot(), scaleServices)
			if n := losses.n.Load(); n != 0 {
				t.Errorf("%d streams lost", n)
			}
			if v := c.Versions()[resourcev3.ListenerType]; v == "" {
				t.Error("LDS not accepted")
			}
		})
	}
}

// checkScale checks that snap serves the first n Services of
// xdstest.Scale: each cluster with its one endpoint, each VIP its chain.
func checkScale(t *testing.T, snap *xds.Snapshot, n int) {
	t.Helper()
	mi := snap.Listener("main_internal")
	if mi == nil {
		t.Fatal("no main_internal")
	}
	missing := 0
	for i := range n {
		host, _, vip, _ := xdstest.ScaleService(i)
		name := "inbound-vip|9080|http|" + host
		c := snap.Cluster(name)
		fc := mi.Match(xds.MatchInput{Destination: netip.AddrPortFrom(vip, 9080)})
		if c == nil || len(c.Endpoints) != 1 || fc == nil || fc.Name != name {
			if missing++; missing <= 3 {
				t.Errorf("Service %s: cluster %v, chain %v", host, c != nil, fc != nil)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d Services not served", missing, n)
	}
}

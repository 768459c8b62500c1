package xds_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/internal/memtest"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// TestScaleConfig: the generated config builds, every Service has its
// cluster with its one endpoint, and its VIP picks its own chain.
func TestScaleConfig(t *testing.T) {
	const n = 300 // past 255: the VIPs' third octet changes
	snap, err := xds.BuildResources("1", xdstest.ScaleResources(t, n))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	mi := snap.Listener("main_internal")
	for i := range n {
		host, _, vip, pod := xdstest.ScaleService(i)
		name := "inbound-vip|9080|http|" + host
		c := snap.Cluster(name)
		if c == nil || len(c.Endpoints) != 1 || c.Endpoints[0].Address != netip.AddrPortFrom(pod, 9080) || c.Transport != xds.TransportHBONE {
			t.Fatalf("cluster %s = %+v", name, c)
		}
		fc := mi.Match(xds.MatchInput{Destination: netip.AddrPortFrom(vip, 9080)})
		if fc == nil || fc.Name != name || fc.HTTP == nil {
			t.Fatalf("%s:9080 picks %s; want %s", vip, pickedName(fc), name)
		}
	}
	if len(snap.Clusters) != n+3 || len(mi.FilterChains) != n+2 {
		t.Errorf("%d clusters and %d main_internal chains, want %d and %d", len(snap.Clusters), len(mi.FilterChains), n+3, n+2)
	}
}

// scaleBuildOptions are build options as the waypoint's: a metrics
// registry and a logger that formats (to nowhere).
func scaleBuildOptions() xds.BuildOptions {
	return xds.BuildOptions{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
}

// BenchmarkConfigScale decodes and builds the config of a namespace
// waypoint serving N Services as the xDS client does (BuildWire of the
// resources as received, the large ones packed, with options as the
// waypoint's). One op is the whole push. Beside time and
// bytes per op it reports cpu-ns/op, the process's CPU time per op, and
// retained-B/svc: the live heap the resources as received and the built
// snapshot keep, per Service, measured after a GC with both kept alive,
// as the xDS client keeps them (its accepted state and the applied
// snapshot).
func BenchmarkConfigScale(b *testing.B) {
	for _, n := range []int{100, 1000, 3000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			config := xdstest.Scale(b, n)
			packed := make([]*anypb.Any, len(config)) // as the xDS client keeps them
			for i, a := range config {
				packed[i] = xds.Pack(a)
			}
			opts := scaleBuildOptions()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				snap, err := opts.BuildWire("1", xdstest.Wire(b, packed))
				if err != nil {
					b.Fatal(err)
				}
				snap.Close()
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.StopTimer()
			before := memtest.LiveHeap()
			// The Anys as the client has them: its own, as received, the
			// large ones packed.
			received := make([]*anypb.Any, len(config))
			for i, a := range config {
				received[i] = xds.Pack(proto.Clone(a).(*anypb.Any))
			}
			w := xdstest.Wire(b, received)
			snap, err := opts.BuildWire("1", w)
			if err != nil {
				b.Fatal(err)
			}
			after := memtest.LiveHeap()
			runtime.KeepAlive(config) // alive in before: not to be counted out of after
			runtime.KeepAlive(w)
			snap.Close()
			runtime.KeepAlive(snap)
			b.ReportMetric(float64(after-before)/float64(n), "retained-B/svc")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system, all
// threads: the GC's work too), in ns. On a shared machine it is steadier
// than the wall time of an op.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func pickedName(fc *xds.FilterChain) string {
	if fc == nil {
		return "<nil>"
	}
	return fc.Name
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestTelemetryOverhead measures what authorization and telemetry cost: two
// waypoints on the same reviews mesh, one with the router alone (no RBAC,
// no access log, no tracing, --stats=false), one with all four on (the
// fixture's RBAC filters, Istio's text access log to a file, tracing at
// 1% to a collector, the standard metrics), each loaded by fortio in turn
// at the same rate, rounds interleaved; the CPU each waypoint process used
// (utime+stime from /proc) is divided by the requests it served. It
// reports figures and asserts only that every request succeeded: timings
// are never asserted. Both run with --concurrency 1 (one P: fewer
// cross-thread wake-ups, whose noise swamps the difference otherwise;
// WAYPOINT_MEASURE_CONCURRENCY changes it). A measurement, so it runs only with
// WAYPOINT_MEASURE=1 (bench/README.md, "Authorization and telemetry").
func TestTelemetryOverhead(t *testing.T) {
	if os.Getenv("WAYPOINT_MEASURE") == "" {
		t.Skip("a measurement: run with WAYPOINT_MEASURE=1")
	}
	logs := t.TempDir()
	conc := []string{"--concurrency", strconv.Itoa(envInt("WAYPOINT_MEASURE_CONCURRENCY", 1))}
	base := newReviewsEnv(t, 62, reviewsOptions{NoRBAC: true, Sources: []string{"productpage/9080"}, WaypointArgs: append([]string{"--stats=false"}, conc...)})
	full := newReviewsEnv(t, 63, reviewsOptions{AccessLogDir: logs, TextLogOnly: true, Tracing: 1, Sources: []string{"productpage/9080"}, WaypointArgs: conc})
	startCollector(t, full.ip(20)+":4317")
	qps, n := envInt("WAYPOINT_MEASURE_QPS", 1000), envInt("WAYPOINT_MEASURE_N", 10000)
	rounds := envInt("WAYPOINT_MEASURE_ROUNDS", 3)
	type total struct {
		ticks uint64
		reqs  int64
	}
	totals := map[string]*total{"router only": {}, "RBAC+metrics+tracing 1%+access log": {}}
	envs := map[string]*reviewsEnv{"router only": base, "RBAC+metrics+tracing 1%+access log": full}
	order := []string{"router only", "RBAC+metrics+tracing 1%+access log"}
	for _, e := range envs { // warm up connections and pools
		fortioLoad(t, "-c", "8", "-n", "500", "-qps", "0", "http://"+e.source("productpage", 9080)+"/reviews/1")
	}
	var ratios []float64 // all four on / router only, per round
	for r := range rounds {
		order = []string{"router only", "RBAC+metrics+tracing 1%+access log"}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		perRound := map[string]float64{}
		for _, name := range order {
			e := envs[name]
			var prof chan []byte
			if dir := os.Getenv("WAYPOINT_MEASURE_PROFILE"); dir != "" && r == 0 {
				prof = make(chan []byte, 1)
				go func() {
					resp, err := http.Get(e.adminURL() + "/debug/pprof/profile?seconds=9")
					if err != nil {
						prof <- nil
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					prof <- b
				}()
				defer func() { os.WriteFile(filepath.Join(dir, strings.Fields(name)[0]+".pprof"), <-prof, 0o644) }()
			}
			mallocs := heapMallocs(t, e)
			before := cpuTicks(t, e.waypoint.cmd.Process.Pid)
			res := fortioLoad(t, "-c", "8", "-n", strconv.Itoa(n), "-qps", strconv.Itoa(qps), "http://"+e.source("productpage", 9080)+"/reviews/1")
			after := cpuTicks(t, e.waypoint.cmd.Process.Pid)
			mallocs = heapMallocs(t, e) - mallocs
			if res.RetCodes["200"] != int64(n) {
				t.Fatalf("%s: fortio saw %v, want %d OK", name, res.RetCodes, n)
			}
			totals[name].ticks += after - before
			totals[name].reqs += int64(n)
			perRound[name] = perRequest(after-before, int64(n))
			t.Logf("round %d %s: %.1f µs CPU and %.1f allocations per request", r+1, name, perRequest(after-before, int64(n)), float64(mallocs)/float64(n))
		}
		ratios = append(ratios, perRound["RBAC+metrics+tracing 1%+access log"]/perRound["router only"])
	}
	sort.Float64s(ratios)
	b, f := totals["router only"], totals["RBAC+metrics+tracing 1%+access log"]
	pb, pf := perRequest(b.ticks, b.reqs), perRequest(f.ticks, f.reqs)
	t.Logf("router only: %.1f µs CPU per request; all four on: %.1f µs (%+.1f%%), %d requests each at %d qps, %d rounds; median of the rounds' ratios %+.1f%%",
		pb, pf, 100*(pf-pb)/pb, b.reqs, qps, rounds, 100*(median(ratios)-1))
}

// median is the middle of sorted values, or the mean of the two middle
// ones: the rounds alternate which waypoint goes first, so an even count
// holds as many of each order.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// perRequest converts clock ticks (USER_HZ, 100 per second) per n
// requests to microseconds per request.
func perRequest(ticks uint64, n int64) float64 { return float64(ticks) * 1e4 / float64(n) }

// cpuTicks is utime+stime of a process, from /proc/PID/stat.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}

// heapMallocs is the waypoint's count of heap allocations so far, from its
// pprof heap profile's runtime.MemStats.
func heapMallocs(t *testing.T, e *reviewsEnv) uint64 {
	t.Helper()
	resp, err := http.Get(e.adminURL() + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "# Mallocs = "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	t.Fatal("no Mallocs in the heap profile")
	return 0
}

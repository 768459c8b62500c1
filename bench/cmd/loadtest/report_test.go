package main

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing: want NaN")
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its argument in place")
	}
}

// reqCell is a successful request run: cpuUs per request, p99 in ms.
func reqCell(scenario, proxy string, round int, cpuUs, p99ms float64) *cell {
	c := &cell{scenario: scenario, label: scenario, proxy: proxy, round: round,
		seconds: 5, requests: 10000, rps: 2000, voluntary: 5000, peakKiB: 20 * 1024}
	c.cpuSeconds = cpuUs * float64(c.requests) / 1e6
	c.latency = [4]float64{0.0005, 0.001, p99ms / 1000, 0.01}
	return c
}

func TestAggregate(t *testing.T) {
	failed := &cell{scenario: "http1", label: "http1", proxy: "caddy", round: 1, err: errors.New("caddy exited")}
	cells := []*cell{
		reqCell("http1", "waypoint", 1, 30, 2), reqCell("http1", "nginx", 1, 25, 3),
		reqCell("http1", "nginx", 2, 27, 3), reqCell("http1", "waypoint", 2, 90, 9),
		reqCell("http1", "waypoint", 3, 32, 2), failed,
		{scenario: "bulk", label: "bulk-16", proxy: "waypoint-2", name: "waypoint (GOMAXPROCS=2)", round: 1, streams: 16, seconds: 2, bytes: 2e9, cpuSeconds: 1, peakKiB: 40 << 10},
		{scenario: "idle", label: "idle", proxy: "waypoint", round: 1, streams: 1000, opened: 998, failures: 2,
			rssBeforeKiB: 20000, rssAfterKiB: 29980, cpuSeconds: 0.5},
	}
	rows := aggregate(cells)
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5 (waypoint, nginx, caddy, bulk-16, idle)", len(rows))
	}
	w, n, c, bulk, idle := rows[0], rows[1], rows[2], rows[3], rows[4]
	if w.proxy != "waypoint" || w.runs != 3 || w.ok != 3 || math.Abs(w.cpuUs-32) > 1e-9 || w.latency[2] != 2 {
		t.Errorf("waypoint row: %+v; want the medians of 3 runs (32 µs, p99 2 ms) despite one outlier", w)
	}
	if math.Abs(n.cpuUs-26) > 1e-9 || math.Abs(n.vcpuPer1k-0.026) > 1e-12 || n.ctxPerReq != 0.5 || n.peakMiB != 20 {
		t.Errorf("nginx row: cpu %v, vCPU per 1k %v, ctx %v, peak %v; want 26, 0.026, 0.5, 20", n.cpuUs, n.vcpuPer1k, n.ctxPerReq, n.peakMiB)
	}
	if c.ok != 0 || c.err == nil || !math.IsNaN(c.cpuUs) {
		t.Errorf("caddy row: %+v; want no successful run, its error and no figures", c)
	}
	if bulk.bytesPerSec != 1e9 || bulk.bytesPerCPUSec != 2e9 || bulk.streams != 16 {
		t.Errorf("bulk row: %v B/s, %v B per CPU-s; want 1e9 and 2e9", bulk.bytesPerSec, bulk.bytesPerCPUSec)
	}
	if math.Abs(idle.kibPerStream-10) > 1e-9 || idle.failures != 2 || math.Abs(idle.setupUs-0.5e6/998) > 1e-9 {
		t.Errorf("idle row: %v KiB per stream, %d failures; want 10 and 2", idle.kibPerStream, idle.failures)
	}

	var buf bytes.Buffer
	writeTables(&buf, rows)
	out := buf.String()
	for _, want := range []string{
		"| http1 | waypoint | 3 | 2000 | 32.0 | 0.032 |",
		"| http1 | caddy | 0 of 1 | n/a | n/a |",
		"| bulk-16 | waypoint (GOMAXPROCS=2) | 1 | 16 | 1000 | 1.00 | 2.00 | 40.0 |",
		"| idle | waypoint | 1 | 1000 | 19.5 | 29.3 | 10.0 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
	buf.Reset()
	writeRuns(&buf, cells)
	if !strings.Contains(buf.String(), "| http1 | caddy | 1 |") || !strings.Contains(buf.String(), "caddy exited") {
		t.Errorf("runs table lacks the failed run:\n%s", buf.String())
	}
}

// named is c with the name a runner gives a waypoint variant.
func named(c *cell, name string) *cell {
	c.name = name
	return c
}

func TestWriteGoals(t *testing.T) {
	o, err := parseOptions([]string{"-bulk-streams", "16"})
	if err != nil {
		t.Fatal(err)
	}
	const w1, w2, wu = "waypoint (GOMAXPROCS=1)", "waypoint (GOMAXPROCS=2)", "waypoint (GOMAXPROCS unset = 2)"
	ctx := func(c *cell, perReq float64) *cell {
		c.voluntary = uint64(perReq * float64(c.requests))
		return c
	}
	cells := []*cell{
		named(reqCell("http1", "waypoint-1", 1, 30, 2), w1), named(reqCell("http1", "waypoint-2", 1, 33, 2), w2),
		named(reqCell("http1", "waypoint-unset", 1, 36, 2), wu),
		reqCell("http1", "nginx", 1, 25, 3), reqCell("http1", "caddy", 1, 110, 5),
		named(reqCell("grpc", "waypoint-1", 1, 60, 2), w1), named(reqCell("grpc", "waypoint-2", 1, 120, 4), w2),
		reqCell("grpc", "nginx", 1, 66, 3),
		named(ctx(reqCell("hbone-http1", "waypoint-1", 1, 45, 4), 1.75), w1),
		named(ctx(reqCell("hbone-http1", "waypoint-2", 1, 72, 4), 4.5), w2),
		ctx(reqCell("hbone-http1", "nginx", 1, 60, 4), 1.8),
		named(&cell{scenario: "bulk", label: "bulk-16", proxy: "waypoint-1", round: 1, streams: 16, seconds: 1, bytes: 1e9, cpuSeconds: 1}, w1),
		named(&cell{scenario: "bulk", label: "bulk-16", proxy: "waypoint-2", round: 1, streams: 16, seconds: 1, bytes: 1e9, cpuSeconds: 2}, w2),
	}
	cells[8].peakKiB = 31 << 10
	var buf bytes.Buffer
	writeGoals(&buf, o, aggregate(cells))
	out := buf.String()
	for _, want := range []string{
		"http1        waypoint (GOMAXPROCS=1)         CPU 1.20x nginx, p99 0.67x; CPU 0.27x caddy",
		"http1        waypoint (GOMAXPROCS unset = 2) CPU 1.44x nginx, p99 0.67x; CPU 0.33x caddy",
		"http1        caddy                           CPU 4.40x nginx",
		"grpc         waypoint (GOMAXPROCS=2)         CPU 1.82x nginx, p99 1.33x",
		"hbone-http1  waypoint (GOMAXPROCS=2)         CPU 1.20x nginx TLS chain",
		"Waypoint variants to waypoint (GOMAXPROCS=1)",
		"http1        waypoint (GOMAXPROCS=2)         CPU 1.10x, p99 1.00x, ctx switches/req 0.500 vs 0.500 (1.00x); nginx 0.500",
		"hbone-http1  waypoint (GOMAXPROCS=2)         CPU 1.60x, p99 1.00x, ctx switches/req 4.50 vs 1.75 (2.57x); nginx 1.80",
		"FAIL http1: waypoint (GOMAXPROCS=1) CPU per request / nginx's (1 worker): 1.20x (target <= 1.0x)",
		"PASS http1: waypoint (GOMAXPROCS=1) CPU per request / Caddy's: 0.273x (target <= 0.3x)",
		"PASS http1: waypoint (GOMAXPROCS=1) p99 / nginx's: 0.667x",
		"PASS grpc: waypoint (GOMAXPROCS=1) CPU per request / nginx grpc_pass's: 0.909x (target <= 1.0x)",
		"PASS hbone-http1: waypoint (GOMAXPROCS=1) CPU per request / the nginx TLS chain's: 0.750x (target <= 0.9x)",
		"PASS hbone-http1 at 1000 rps: waypoint (GOMAXPROCS=1) CPU per request: 45.0 µs (target <= 50.0 µs)",
		"FAIL hbone-http1: waypoint (GOMAXPROCS=1) peak RSS: 31.0 MiB (target <= 30.0 MiB)",
		"PASS http1: waypoint (GOMAXPROCS=2) CPU per request / waypoint (GOMAXPROCS=1)'s: 1.10x (target <= 1.15x)",
		"FAIL http1: waypoint (GOMAXPROCS unset = 2) CPU per request / waypoint (GOMAXPROCS=1)'s: 1.20x (target <= 1.15x)",
		"FAIL grpc: waypoint (GOMAXPROCS=2) CPU per request / waypoint (GOMAXPROCS=1)'s: 2.00x (target <= 1.15x)",
		"n/a  grpc: waypoint (GOMAXPROCS unset = 2) CPU per request / waypoint (GOMAXPROCS=1)'s: n/a (target <= 1.15x)",
		"n/a (waypoint (GOMAXPROCS unset = 2) and waypoint (GOMAXPROCS=1) were not both measured)",
		"FAIL hbone-http1: waypoint (GOMAXPROCS=2) CPU per request / waypoint (GOMAXPROCS=1)'s: 1.60x (target <= 1.15x)",
		"PASS bulk TCP through HBONE, 16 stream(s): bytes per waypoint (GOMAXPROCS=1) CPU-second: 1.00 GB (target >= 0.8 GB)",
		"FAIL bulk TCP through HBONE, 16 stream(s): bytes per waypoint (GOMAXPROCS=2) CPU-second: 0.500 GB (target >= 0.8 GB)",
		"n/a  bulk TCP through HBONE, 16 stream(s): bytes per waypoint (GOMAXPROCS unset = 2) CPU-second: n/a (target >= 0.8 GB)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("goals lack %q:\n%s", want, out)
		}
	}
	for _, absent := range []string{"h2c", "idle:"} {
		if strings.Contains(out, absent) {
			t.Errorf("goals mention %q, which did not run:\n%s", absent, out)
		}
	}
	i, j, k := strings.Index(out, "Ratios"), strings.Index(out, "Waypoint variants"), strings.Index(out, "Targets")
	if i < 0 || j < i || k < j {
		t.Errorf("want the ratios to nginx, to GOMAXPROCS=1, then the targets:\n%s", out)
	}
}

func TestWriteChart(t *testing.T) {
	dir := t.TempDir()
	rows := aggregate([]*cell{reqCell("http1", "waypoint", 1, 30, 2), reqCell("http1", "nginx", 1, 25, 3),
		reqCell("grpc", "nginx", 1, 40, 3)})
	path := filepath.Join(dir, "chart.png")
	drew, err := writeChart(path, "test", rows)
	if err != nil || !drew {
		t.Fatalf("writeChart: drew %v, err %v", drew, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG", path)
	}
	bulkOnly := aggregate([]*cell{{scenario: "bulk", label: "bulk-1", proxy: "waypoint", streams: 1, seconds: 1, bytes: 1, cpuSeconds: 1}})
	if drew, err := writeChart(filepath.Join(dir, "none.png"), "test", bulkOnly); drew || err != nil {
		t.Errorf("nothing to draw: drew %v, err %v; want false, nil", drew, err)
	}
}

func TestWriteGoalsWithoutReference(t *testing.T) {
	o, err := parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	writeGoals(&buf, o, aggregate([]*cell{named(reqCell("http1", "waypoint-1", 1, 30, 2), "waypoint (GOMAXPROCS=1)")}))
	out := buf.String()
	for _, want := range []string{
		"(nginx and another proxy were not both measured)",
		"(no request scenario measured two variants)",
		"n/a  http1: waypoint (GOMAXPROCS=1) CPU per request / nginx's (1 worker): n/a (target <= 1.0x)",
		"n/a (waypoint (GOMAXPROCS=1) and caddy were not both measured)",
		// Not run: named without the GOMAXPROCS Go chose.
		"n/a (waypoint (GOMAXPROCS unset) and waypoint (GOMAXPROCS=1) were not both measured)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("goals lack %q:\n%s", want, out)
		}
	}
}

func TestWriteGoalsWithoutOneCore(t *testing.T) {
	o, err := parseOptions([]string{"-gomaxprocs", "2", "-scenarios", "http1"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	writeGoals(&buf, o, aggregate([]*cell{named(reqCell("http1", "waypoint-2", 1, 30, 2), "waypoint (GOMAXPROCS=2)"), reqCell("http1", "nginx", 1, 30, 2)}))
	out := buf.String()
	for _, want := range []string{
		"http1        waypoint (GOMAXPROCS=2) CPU 1.00x nginx",
		"n/a  http1: waypoint (GOMAXPROCS=1) CPU per request / nginx's (1 worker): n/a",
		"n/a (waypoint (GOMAXPROCS=1) and nginx were not both measured)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("goals lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Waypoint variants") {
		t.Errorf("one variant: no comparison of variants wanted:\n%s", out)
	}
}

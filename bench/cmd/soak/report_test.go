package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	// RSS grows 1 MiB a minute; latency is absent in the first row (no
	// load yet) and its rows before the warm-up are left out.
	var rows []sample
	for i := range 7 {
		r := sample{at: time.Duration(i) * time.Minute, rssKiB: int64(10+i) * 1024, goroutines: 50}
		if i > 0 {
			r.iv = interval{requests: 10, p50: time.Duration(i) * time.Millisecond}
		}
		rows = append(rows, r)
	}
	rss := summarize(rows, time.Minute, metrics[0])
	if rss.start != 10 || rss.end != 16 || rss.min != 11 || rss.max != 16 || rss.n != 6 {
		t.Errorf("RSS figures %+v", rss)
	}
	if math.Abs(rss.slope-60) > 1e-9 {
		t.Errorf("RSS slope %v MiB/h, want 60", rss.slope)
	}
	if rss.firstMean != 11.5 || rss.lastMean != 15.5 {
		t.Errorf("RSS thirds %v → %v, want 11.5 → 15.5", rss.firstMean, rss.lastMean)
	}
	if g := summarize(rows, time.Minute, metrics[1]); g.slope != 0 || g.min != 50 || g.max != 50 {
		t.Errorf("flat goroutines: %+v", g)
	}
	p50 := summarize(rows, 0, metrics[3])
	if p50.start != 1 || p50.n != 6 {
		t.Errorf("p50 starts at %v over %d rows, want 1 over the 6 rows with requests", p50.start, p50.n)
	}
	if f := summarize(rows[:1], time.Hour, metrics[0]); !math.IsNaN(f.slope) || !math.IsNaN(f.min) || f.start != 10 {
		t.Errorf("nothing after the warm-up: %+v", f)
	}
}

func TestParseProc(t *testing.T) {
	rss, err := parseVmRSS("Name:\twaypoint\nVmHWM:\t  60000 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n")
	if err != nil || rss != 51234 {
		t.Errorf("parseVmRSS = %d, %v; want 51234", rss, err)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Error("no VmRSS: want an error")
	}
	// utime 250, stime 50 ticks; the name holds a space and a parenthesis.
	stat := "4242 (way point) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200"
	if cpu, err := parseCPU(stat); err != nil || cpu != 3 {
		t.Errorf("parseCPU = %v, %v; want 3 s", cpu, err)
	}
	if _, err := parseCPU("4242 (x) S 1"); err == nil {
		t.Error("short stat: want an error")
	}
}

func TestAccessLogSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	lines := `[2026-12-07T05:15:54.123Z] "GET / HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "connection refused" 3ms upstream=127.79.0.3:8080 cluster=soak attempts=3
[2026-12-07T05:15:55.000Z] "GET /h2 HTTP/2" 200 - via_upstream - "-" 1200ms upstream=127.79.0.4:8080 cluster=soak-h2 attempts=1
[2026-12-07T05:15:56.000Z] "GET / HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 2ms upstream=127.79.0.3:8080 cluster=soak attempts=3
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ls := accessLogSummary(path, 2)
	if ls.lines != 3 || len(ls.first) != 2 || ls.byCode["503 UF"] != 2 || ls.byCode["200 -"] != 1 {
		t.Errorf("summary %+v", ls)
	}
	if ls := accessLogSummary(filepath.Join(t.TempDir(), "none"), 2); ls.lines != 0 {
		t.Errorf("no file: %+v", ls)
	}
}

// TestWriteResults writes a run's Markdown and PNG and checks what they
// say.
func TestWriteResults(t *testing.T) {
	o := options{duration: 2 * time.Minute, warmup: 30 * time.Second, sample: 30 * time.Second, rate: 1000, concurrency: 8,
		endpoints: 20, churn: 2, churnEvery: time.Second, grace: 5 * time.Second, cfgEvery: 10 * time.Second, args: []string{"soak", "-duration", "2m"}}
	g := newLoadgen("", 1000, 8)
	g.scheduled.Store(120000)
	g.sent.Store(120000)
	g.ok.Store(119999)
	g.failed.Store(1)
	g.reasons["http1 to h2: status 503, \"no healthy upstream\""] = 1
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	r := &results{o: o, started: start, ended: start.Add(o.duration), g: g, pods: "40 pods started", loadStart: "1.0", loadEnd: "1.5",
		counters:  []string{"cluster.soak.upstream_rq_retry: 3"},
		accessLog: logSummary{lines: 1, byCode: map[string]int{"503 UH": 1}, first: []string{"a line"}}}
	for i := range 5 {
		s := sample{at: time.Duration(i) * 30 * time.Second, rssKiB: 50 << 10, goroutines: 100, fds: 34, cpu: float64(i) * 5}
		if i > 0 {
			s.iv = interval{requests: 30000, p50: time.Millisecond, p99: 5 * time.Millisecond, max: 20 * time.Millisecond}
		}
		r.rows = append(r.rows, s)
	}
	dir := t.TempDir()
	mdPath, pngPath, err := r.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "soak-2026-12-07-050000.md"); mdPath != want {
		t.Errorf("md at %s, want %s", mdPath, want)
	}
	png, err := os.ReadFile(pngPath)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG (%v)", pngPath, err)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`bin/soak -duration 2m`",
		"configured over state-of-the-world ADS",
		"| RSS, MiB | 50.0 | 50.0-50.0 | 50.0 → 50.0 | 50.0 | +0.0 |",
		"| latency p99, ms | 5.00 |",
		"**1 failed**",
		`1 × http1 to h2: status 503, "no healthy upstream"`,
		"cluster.soak.upstream_rq_retry: 3",
		"1 × 503 UH",
		"17% of a core", // 20 CPU seconds over 2 minutes
		"![RSS, goroutines, fds, latency and throughput over time](soak-2026-12-07-050000.png)",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the summary lacks %q:\n%s", want, md)
		}
	}
	if err := r.verdict(); err == nil || !strings.Contains(err.Error(), "1 requests failed") {
		t.Errorf("verdict %v, want the failed request", err)
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/gowaypoint/waypoint/bench/internal/chart"
)

// results is what a run measured, written out at its end.
type results struct {
	o                  options
	started, ended     time.Time // the load's
	loadStart, loadEnd string    // the machine's load average
	rows               []sample
	pushes             pushCounts
	pods               string // the pods' counts at the end
	g                  *loadgen
	counters           []string // the waypoint's, "name: value"
	selfCPU            float64  // this process's CPU seconds during the load
	accessLog          logSummary
}

// metric is one sampled figure.
type metric struct {
	name, unit string
	prec       int
	value      func(sample) float64 // NaN when the row has none
}

func latencyOf(f func(interval) time.Duration) func(sample) float64 {
	return func(r sample) float64 {
		if r.iv.requests == 0 {
			return math.NaN()
		}
		return float64(f(r.iv)) / float64(time.Millisecond)
	}
}

var metrics = []metric{
	{"RSS", "MiB", 1, func(r sample) float64 { return float64(r.rssKiB) / 1024 }},
	{"goroutines", "", 0, func(r sample) float64 { return float64(r.goroutines) }},
	{"open fds", "", 0, func(r sample) float64 { return float64(r.fds) }},
	{"latency p50", "ms", 2, latencyOf(func(iv interval) time.Duration { return iv.p50 })},
	{"latency p99", "ms", 2, latencyOf(func(iv interval) time.Duration { return iv.p99 })},
	{"latency max", "ms", 1, latencyOf(func(iv interval) time.Duration { return iv.max })},
}

// figures summarize one metric over a run.
type figures struct {
	start, end          float64 // the first and last rows that have it
	min, max            float64 // after the warm-up
	firstMean, lastMean float64 // means of the first and last third after the warm-up
	slope               float64 // per hour, least squares after the warm-up
	n                   int     // rows after the warm-up
}

// summarize computes m's figures over rows; rows before warmup count only
// for start.
func summarize(rows []sample, warmup time.Duration, m metric) figures {
	f := figures{start: math.NaN(), end: math.NaN(), min: math.NaN(), max: math.NaN(),
		firstMean: math.NaN(), lastMean: math.NaN(), slope: math.NaN()}
	var xs, ys []float64
	for _, r := range rows {
		v := m.value(r)
		if math.IsNaN(v) {
			continue
		}
		if math.IsNaN(f.start) {
			f.start = v
		}
		f.end = v
		if r.at < warmup {
			continue
		}
		xs, ys = append(xs, r.at.Hours()), append(ys, v)
	}
	f.n = len(ys)
	if f.n == 0 {
		return f
	}
	f.min, f.max = slices.Min(ys), slices.Max(ys)
	third := max(f.n/3, 1)
	f.firstMean, f.lastMean = mean(ys[:third]), mean(ys[f.n-third:])
	f.slope = slope(xs, ys)
	return f
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// slope is the least-squares slope of y over x; NaN with fewer than two
// distinct xs.
func slope(xs, ys []float64) float64 {
	if len(xs) < 2 {
		return math.NaN()
	}
	mx, my := mean(xs), mean(ys)
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return sxy / sxx
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func signed(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%+.*f", prec, v)
}

// writeFigures writes the table of figures, in Markdown when md.
func (r *results) writeFigures(w io.Writer, md bool) {
	head := []string{"", "start", fmt.Sprintf("after warm-up (%v): min-max", r.o.warmup), "mean: first third → last third", "end", "slope after warm-up, per hour"}
	var rows [][]string
	for _, m := range metrics {
		f := summarize(r.rows, r.o.warmup, m)
		name := m.name
		if m.unit != "" {
			name += ", " + m.unit
		}
		rows = append(rows, []string{name, num(f.start, m.prec), num(f.min, m.prec) + "-" + num(f.max, m.prec),
			num(f.firstMean, m.prec) + " → " + num(f.lastMean, m.prec), num(f.end, m.prec), signed(f.slope, m.prec)})
	}
	writeTable(w, md, head, rows)
}

// writeTable writes a Markdown table, or aligned columns.
func writeTable(w io.Writer, md bool, head []string, rows [][]string) {
	if md {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		fmt.Fprintln(w)
		return
	}
	width := make([]int, len(head))
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			fmt.Fprintf(w, "%-*s  ", width[i]+len(c)-len([]rune(c)), c)
		}
		fmt.Fprintln(w)
	}
}

// writeRequests writes the requests' outcome, the pushes, the failures and
// what the waypoint counted and logged.
func (r *results) writeRequests(w io.Writer, md bool) {
	g := r.g
	secs := r.ended.Sub(r.started).Seconds()
	bullet := "- "
	if !md {
		bullet = "  "
	}
	fmt.Fprintf(w, "%s%d requests due, %d sent (%.0f/s), %d answered 200 \"ok\" (%d by config a, %d by config b), **%d failed**\n",
		bullet, g.scheduled.Load(), g.sent.Load(), float64(g.sent.Load())/secs, g.ok.Load(), g.byConfig[0].Load(), g.byConfig[1].Load(), g.failed.Load())
	fmt.Fprintf(w, "%s%d sent more than %v after their time, %d not sent (no free worker within %v)\n",
		bullet, g.late.Load(), lateAfter, g.missed.Load(), maxLag)
	if n := len(r.rows); n > 1 && g.sent.Load() > 0 {
		cpu := r.rows[n-1].cpu - r.rows[0].cpu
		secs := (r.rows[n-1].at - r.rows[0].at).Seconds()
		fmt.Fprintf(w, "%sthe waypoint's CPU: %.1f s, %.0f%% of a core on average, %.0f µs per request; the soak tool's own "+
			"(load generator, ztunnel stand-ins, pods, xDS server): %.0f%% of a core\n",
			bullet, cpu, 100*cpu/secs, 1e6*cpu/float64(g.sent.Load()), 100*r.selfCPU/secs)
	}
	if p50, p99, mx, ok := g.overall(); ok {
		fmt.Fprintf(w, "%slatency over the whole run (from each request's due time): p50 %s ms, p99 %s ms, max %s ms\n", bullet, ms(p50), ms(p99), ms(mx))
	}
	delays, unseen := g.propagation(r.ended, r.o.cfgEvery/2+time.Second)
	fmt.Fprintf(w, "%s%d config pushes", bullet, r.pushes.config.Load())
	if len(delays) > 0 {
		slices.Sort(delays)
		fmt.Fprintf(w, ", each first served after %s ms (median; max %s ms)", ms(quantile(delays, 0.5)), ms(delays[len(delays)-1]))
	}
	if unseen > 0 {
		fmt.Fprintf(w, ", **%d never served**", unseen)
	}
	fmt.Fprintf(w, "; %d EDS pushes; %s\n", r.pushes.eds.Load(), r.pods)
	reasons, first := g.failures()
	if len(reasons) > 0 {
		fmt.Fprintf(w, "\nFailed requests by reason:\n\n")
		for _, rc := range reasons {
			fmt.Fprintf(w, "%s%d × %s\n", bullet, rc.n, rc.reason)
		}
		fmt.Fprintf(w, "\nThe first failures:\n\n")
		r.block(w, md, first)
	}
	if len(r.counters) > 0 {
		fmt.Fprintf(w, "\nThe waypoint's counters at the end (admin /stats):\n\n")
		r.block(w, md, r.counters)
	}
	ls := r.accessLog
	fmt.Fprintf(w, "\nThe waypoint's access log (requests answered ≥ 300, with a response flag, or slower than 1 s): %d lines", ls.lines)
	if ls.lines == 0 {
		fmt.Fprintln(w, ".")
		return
	}
	keys := make([]string, 0, len(ls.byCode))
	for k := range ls.byCode {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var by []string
	for _, k := range keys {
		by = append(by, fmt.Sprintf("%d × %s", ls.byCode[k], k))
	}
	fmt.Fprintf(w, " (code and flags: %s); the first:\n\n", strings.Join(by, ", "))
	r.block(w, md, ls.first)
}

func (r *results) block(w io.Writer, md bool, lines []string) {
	if md {
		fmt.Fprintln(w, "```")
	}
	for _, l := range lines {
		if !md {
			l = "  " + l
		}
		fmt.Fprintln(w, l)
	}
	if md {
		fmt.Fprintln(w, "```")
	}
}

// print writes the summary to the terminal.
func (r *results) print(w io.Writer) {
	fmt.Fprintln(w)
	r.writeFigures(w, false)
	fmt.Fprintln(w)
	r.writeRequests(w, false)
}

// write writes soak-DATE.md and soak-DATE.png into dir.
func (r *results) write(dir string) (mdPath, pngPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	stamp := r.started.UTC().Format("2006-01-02-150405")
	mdPath = filepath.Join(dir, "soak-"+stamp+".md")
	pngPath = filepath.Join(dir, "soak-"+stamp+".png")
	perr := r.plot(pngPath)

	var b bytes.Buffer
	o := r.o
	fmt.Fprintf(&b, "# Soak, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "`%s` (bench/README.md, \"Soak\"), %s.\n\n", strings.Join(append([]string{"bin/soak"}, o.args[1:]...), " "), revision())
	fmt.Fprintf(&b, "%v of load at %.0f req/s (open loop, at most %d in flight) through a source ztunnel stand-in, HBONE (mTLS) "+
		"to the waypoint (configured over %s ADS), and HBONE to pods behind their own ztunnel stand-ins; HTTP/1.1 and h2c inside the tunnels, "+
		"to a cluster speaking HTTP/1.1 and one speaking HTTP/2 to the pods. %d endpoints; every %v the %d oldest leave by an EDS push, "+
		"keep serving for %v, then shut down, and as many new pods arrive. Every %v the config flips between version a "+
		"(no RBAC filter, ROUND_ROBIN) and b (an RBAC ALLOW of the client's principal, LEAST_REQUEST), each route adding "+
		"`x-soak-config: a|b`. Samples every %v; ranges, means and slopes leave out the first %v.\n\n",
		r.ended.Sub(r.started).Round(time.Second), o.rate, o.concurrency, adsMode(o.delta), o.endpoints, o.churnEvery, o.churn, o.grace, o.cfgEvery, o.sample, o.warmup)
	fmt.Fprintf(&b, "%s\n\n", machine(r.loadStart, r.loadEnd))
	fmt.Fprintf(&b, "## The waypoint over time\n\n")
	r.writeFigures(&b, true)
	if perr == nil {
		fmt.Fprintf(&b, "![RSS, goroutines, fds, latency and throughput over time](%s)\n\n", filepath.Base(pngPath))
	}
	fmt.Fprintf(&b, "## Requests\n\n")
	r.writeRequests(&b, true)
	fmt.Fprintf(&b, "\n## Every sample\n\n")
	var rows [][]string
	for i, s := range r.rows {
		rate, core := "-", "-"
		if i > 0 && s.at > r.rows[i-1].at {
			d := (s.at - r.rows[i-1].at).Seconds()
			rate, core = fmt.Sprintf("%.0f", float64(s.iv.requests)/d), fmt.Sprintf("%.0f%%", 100*(s.cpu-r.rows[i-1].cpu)/d)
		}
		rows = append(rows, []string{s.at.String(), num(float64(s.rssKiB)/1024, 1), fmt.Sprint(s.goroutines), fmt.Sprint(s.fds),
			ms(s.iv.p50), ms(s.iv.p99), ms(s.iv.max), rate, fmt.Sprint(s.iv.failures), fmt.Sprint(s.iv.late), core})
	}
	writeTable(&b, true, []string{"t", "RSS MiB", "goroutines", "fds", "p50 ms", "p99 ms", "max ms", "req/s", "failed", "sent late", "waypoint CPU"}, rows)
	fmt.Fprintf(&b, "Latency counts from each request's due time; \"sent late\" are the requests the load generator itself sent more than %v after it (a machine too busy to keep the schedule shows there first).\n", lateAfter)
	if err := os.WriteFile(mdPath, b.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	return mdPath, pngPath, perr
}

// plot draws the panels: RSS, goroutines, fds, latency (log scale) and
// throughput, over minutes since the load started.
func (r *results) plot(path string) error {
	xs := make([]float64, len(r.rows))
	for i, s := range r.rows {
		xs[i] = s.at.Minutes()
	}
	col := func(m metric) []float64 {
		ys := make([]float64, len(r.rows))
		for i, s := range r.rows {
			ys[i] = m.value(s)
		}
		return ys
	}
	rate, failed := make([]float64, len(r.rows)), make([]float64, len(r.rows))
	for i, s := range r.rows {
		rate[i], failed[i] = math.NaN(), math.NaN()
		if i > 0 && s.at > r.rows[i-1].at {
			d := (s.at - r.rows[i-1].at).Seconds()
			rate[i], failed[i] = float64(s.iv.requests)/d, float64(s.iv.failures)/d
		}
	}
	// Every panel shows the whole run, the end of the warm-up marked.
	opts := chart.LineOptions{MarkLabel: "end of warm-up", XMax: xs[len(xs)-1]}
	if r.o.warmup > 0 && r.o.warmup < r.ended.Sub(r.started) {
		opts.MarkX = []float64{r.o.warmup.Minutes()}
	}
	logY := opts
	logY.LogY = true
	o := r.o
	title := fmt.Sprintf("waypoint soak %s: %.0f req/s, %d endpoints (%d replaced every %v), config flip every %v",
		r.started.UTC().Format("2006-01-02"), o.rate, o.endpoints, o.churn, o.churnEvery, o.cfgEvery)
	var panels []*plot.Plot
	add := func(p *plot.Plot, err error) error {
		if err == nil {
			panels = append(panels, p)
		}
		return err
	}
	// Only the bottom panel names the X axis.
	err := errors.Join(
		add(chart.Lines(title, "", "RSS, MiB", []chart.LineSeries{{Name: "waypoint RSS", Color: chart.Blue, X: xs, Y: col(metrics[0])}}, opts)),
		add(chart.Lines("", "", "goroutines", []chart.LineSeries{{Name: "waypoint goroutines", Color: chart.Purple, X: xs, Y: col(metrics[1])}}, opts)),
		add(chart.Lines("", "", "open fds", []chart.LineSeries{{Name: "waypoint open fds", Color: chart.Orange, X: xs, Y: col(metrics[2])}}, opts)),
		add(chart.Lines("", "", "latency, ms", []chart.LineSeries{
			{Name: "max", Color: chart.Red, X: xs, Y: col(metrics[5])},
			{Name: "p99", Color: chart.Orange, X: xs, Y: col(metrics[4])},
			{Name: "p50", Color: chart.Blue, X: xs, Y: col(metrics[3])},
		}, logY)),
		add(chart.Lines("", "minutes since the load started", "requests per second", []chart.LineSeries{
			{Name: "finished", Color: chart.Green, X: xs, Y: rate},
			{Name: "failed", Color: chart.Red, X: xs, Y: failed},
		}, opts)),
	)
	if err != nil {
		return err
	}
	return chart.WritePNG(path, 20*vg.Centimeter, 34*vg.Centimeter, panels...)
}

// verdict is the run's error: failed requests, or config versions never
// served.
func (r *results) verdict() error {
	var errs []error
	if n := r.g.failed.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d requests failed", n))
	}
	if _, unseen := r.g.propagation(r.ended, r.o.cfgEvery/2+time.Second); unseen > 0 {
		errs = append(errs, fmt.Errorf("%d config pushes were never served", unseen))
	}
	return errors.Join(errs...)
}

func adsMode(delta bool) string {
	if delta {
		return "delta"
	}
	return "state-of-the-world"
}

// machine describes where the run happened.
func machine(loadStart, loadEnd string) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("Machine: %d vCPU (%s), %s; load average %s at the start, %s at the end.",
		runtime.NumCPU(), model, runtime.Version(), loadStart, loadEnd)
}

// revision is the tree's commit, "+ local changes" when it has some.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "commit unknown"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " + local changes"
	}
	return rev
}

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// row is the medians over the rounds of one proxy in one scenario (or bulk
// variant).
type row struct {
	label, scenario, proxy string
	name                   string // the proxy as shown (cell.name); proxy when empty
	runs, ok               int
	err                    error // the first failed run's, when none succeeded

	rps, cpuUs, vcpuPer1k, ctxPerReq float64
	latency                          [4]float64 // milliseconds
	failures                         int64      // summed over the rounds
	peakMiB                          float64
	peakSinceBoot                    bool

	bytesPerSec, cpuSeconds, bytesPerCPUSec float64 // bulk
	streams                                 int
	rssBeforeMiB, rssAfterMiB, kibPerStream float64 // idle
	setupUs                                 float64
}

// median of vs; NaN when empty.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// aggregate turns cells into rows, in the order the cells first appear.
func aggregate(cells []*cell) []*row {
	var rows []*row
	byKey := map[string]*row{}
	vals := map[*row]map[string][]float64{}
	for _, c := range cells {
		key := c.label + "/" + c.proxy
		r := byKey[key]
		if r == nil {
			r = &row{label: c.label, scenario: c.scenario, proxy: c.proxy, name: c.name}
			byKey[key] = r
			rows = append(rows, r)
			vals[r] = map[string][]float64{}
		}
		r.runs++
		r.failures += c.failures
		if c.err != nil {
			if r.err == nil {
				r.err = c.err
			}
			continue
		}
		r.ok++
		v := vals[r]
		add := func(k string, x float64) { v[k] = append(v[k], x) }
		add("peak", float64(c.peakKiB)/1024)
		r.peakSinceBoot = r.peakSinceBoot || c.peakSinceBoot
		switch scenarioByName(c.scenario).kind {
		case kindRequests:
			if c.requests == 0 {
				break
			}
			cpuUs := c.cpuSeconds * 1e6 / float64(c.requests)
			add("rps", c.rps)
			add("cpu", cpuUs)
			add("ctx", float64(c.voluntary)/float64(c.requests))
			for i, l := range c.latency {
				add(fmt.Sprint("lat", i), l*1000)
			}
		case kindBulk:
			r.streams = c.streams
			add("bps", float64(c.bytes)/c.seconds)
			add("cpus", c.cpuSeconds)
			if c.cpuSeconds > 0 {
				add("bpc", float64(c.bytes)/c.cpuSeconds)
			}
		case kindIdle:
			r.streams = c.streams
			add("before", float64(c.rssBeforeKiB)/1024)
			add("after", float64(c.rssAfterKiB)/1024)
			if c.opened > 0 {
				add("kib", (float64(c.rssAfterKiB)-float64(c.rssBeforeKiB))/float64(c.opened))
				add("setup", c.cpuSeconds*1e6/float64(c.opened))
			}
		}
	}
	for _, r := range rows {
		v := vals[r]
		r.peakMiB = median(v["peak"])
		r.rps, r.cpuUs, r.ctxPerReq = median(v["rps"]), median(v["cpu"]), median(v["ctx"])
		r.vcpuPer1k = r.cpuUs / 1000
		for i := range r.latency {
			r.latency[i] = median(v[fmt.Sprint("lat", i)])
		}
		r.bytesPerSec, r.cpuSeconds, r.bytesPerCPUSec = median(v["bps"]), median(v["cpus"]), median(v["bpc"])
		r.rssBeforeMiB, r.rssAfterMiB, r.kibPerStream, r.setupUs = median(v["before"]), median(v["after"]), median(v["kib"]), median(v["setup"])
	}
	return rows
}

// num formats x with prec decimals, or "n/a" for NaN.
func num(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

// sig formats x with about three significant digits.
func sig(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0) || x < 0:
		return "n/a"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	case x >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

func (r *row) runsNote() string {
	if r.ok == r.runs {
		return fmt.Sprint(r.runs)
	}
	return fmt.Sprintf("%d of %d", r.ok, r.runs)
}

func (r *row) peakNote() string {
	if r.peakSinceBoot {
		return sig(r.peakMiB) + "*"
	}
	return sig(r.peakMiB)
}

// writeTables writes the Markdown tables of the rows.
func writeTables(w io.Writer, rows []*row) {
	var req, bulk, idle []*row
	for _, r := range rows {
		switch scenarioByName(r.scenario).kind {
		case kindRequests:
			req = append(req, r)
		case kindBulk:
			bulk = append(bulk, r)
		case kindIdle:
			idle = append(idle, r)
		}
	}
	star := false
	if len(req) > 0 {
		fmt.Fprintln(w, "| scenario | proxy | runs | rps | CPU µs/req | vCPU per 1k rps | ctx switches/req | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | peak RSS MiB |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range req {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
				r.label, proxyLabel(r), r.runsNote(), num(r.rps, 0), sig(r.cpuUs), num(r.vcpuPer1k, 3), sig(r.ctxPerReq),
				sig(r.latency[0]), sig(r.latency[1]), sig(r.latency[2]), sig(r.latency[3]), r.failures, r.peakNote())
			star = star || r.peakSinceBoot
		}
		fmt.Fprintln(w)
	}
	if len(bulk) > 0 {
		fmt.Fprintln(w, "| bulk TCP through HBONE | proxy | runs | streams | throughput MB/s | waypoint CPU s | GB per waypoint CPU-second | peak RSS MiB |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		for _, r := range bulk {
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", r.label, proxyLabel(r), r.runsNote(), r.streams,
				sig(r.bytesPerSec/1e6), sig(r.cpuSeconds), sig(r.bytesPerCPUSec/1e9), r.peakNote())
			star = star || r.peakSinceBoot
		}
		fmt.Fprintln(w)
	}
	if len(idle) > 0 {
		fmt.Fprintln(w, "| idle HBONE streams | proxy | runs | streams | RSS before MiB | RSS after MiB | KiB per stream | CPU µs per stream opened | failed streams |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, r := range idle {
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %s | %s | %d |\n", r.label, proxyLabel(r), r.runsNote(), r.streams,
				sig(r.rssBeforeMiB), sig(r.rssAfterMiB), sig(r.kibPerStream), sig(r.setupUs), r.failures)
		}
		fmt.Fprintln(w)
	}
	if star {
		fmt.Fprintln(w, "\\* VmHWM could not be reset (clear_refs): the process's peak since it started.")
		fmt.Fprintln(w)
	}
}

// proxyLabel names a row's proxy as the tables show it: a waypoint
// variant by its GOMAXPROCS, the nginx of the hbone scenarios for what it
// is.
func proxyLabel(r *row) string {
	switch {
	case r.proxy == "nginx" && scenarioByName(r.scenario).hbone:
		return "nginx (TLS chain)"
	case r.name != "":
		return r.name
	}
	return r.proxy
}

// shown is how a cell's proxy is shown.
func (c *cell) shown() string {
	if c.name != "" {
		return c.name
	}
	return c.proxy
}

// writeRuns writes every measured run, so the noise behind each median shows.
func writeRuns(w io.Writer, cells []*cell) {
	fmt.Fprintln(w, "| scenario | proxy | round | window s | CPU s | requests or bytes | CPU µs/req | p99 ms | errors | load average | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cells {
		amount, per, p99 := "", "", ""
		switch {
		case c.requests > 0:
			amount = fmt.Sprint(c.requests)
			per = sig(c.cpuSeconds * 1e6 / float64(c.requests))
			p99 = sig(c.latency[2] * 1000)
		case c.bytes > 0:
			amount = fmt.Sprintf("%d B", c.bytes)
		case c.opened > 0:
			amount = fmt.Sprintf("%d streams", c.opened)
		}
		result := "ok"
		if c.err != nil {
			result = strings.ReplaceAll(firstLine(c.err), "|", "\\|")
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %d | %s | %s |\n", c.label, c.shown(), c.round,
			num(c.seconds, 1), num(c.cpuSeconds, 2), amount, per, p99, c.failures, c.load, result)
	}
	fmt.Fprintln(w)
}

// summary is a cell's one-line progress report.
func (c *cell) summary() string {
	head := fmt.Sprintf("  round %d %-12s %-31s", c.round, c.label, c.shown())
	switch {
	case c.err != nil:
		return head + " FAILED: " + firstLine(c.err)
	case c.requests > 0:
		return fmt.Sprintf("%s %7.0f rps  %6s µs/req  p99 %s ms  errors %d  peak RSS %s MiB", head, c.rps,
			sig(c.cpuSeconds*1e6/float64(c.requests)), sig(c.latency[2]*1000), c.failures, sig(float64(c.peakKiB)/1024))
	case c.opened > 0:
		return fmt.Sprintf("%s %d streams  RSS %s -> %s MiB  %s KiB/stream", head, c.opened,
			sig(float64(c.rssBeforeKiB)/1024), sig(float64(c.rssAfterKiB)/1024),
			sig((float64(c.rssAfterKiB)-float64(c.rssBeforeKiB))/float64(c.opened)))
	default:
		per := math.NaN()
		if c.cpuSeconds > 0 {
			per = float64(c.bytes) / c.cpuSeconds / 1e9
		}
		return fmt.Sprintf("%s %s MB/s  waypoint CPU %.2f s  %s GB per CPU-second", head,
			sig(float64(c.bytes)/c.seconds/1e6), c.cpuSeconds, sig(per))
	}
}

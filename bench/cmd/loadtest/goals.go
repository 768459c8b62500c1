package main

import (
	"fmt"
	"io"
	"math"
)

// goal is one of the waypoint's targets, checked against the medians.
type goal struct {
	label  string                       // the row's scenario or bulk variant
	what   string                       // what is compared, for the line
	value  func(find) (float64, string) // the measured value, or NaN and why not
	limit  float64
	atMost bool   // pass when value <= limit, else when value >= limit
	unit   string // "x" for ratios
}

// find returns the row of label and proxy, or nil.
type find func(label, proxy string) *row

// ratio is waypoint's metric over ref's in the same scenario.
func ratio(label, ref string, metric func(*row) float64) func(find) (float64, string) {
	return func(f find) (float64, string) {
		w, n := f(label, "waypoint"), f(label, ref)
		switch {
		case w == nil || n == nil:
			return math.NaN(), "waypoint and " + ref + " were not both measured"
		case w.ok == 0 || n.ok == 0:
			return math.NaN(), "every run of one of them failed"
		}
		return metric(w) / metric(n), ""
	}
}

func own(label string, metric func(*row) float64) func(find) (float64, string) {
	return func(f find) (float64, string) {
		w := f(label, "waypoint")
		switch {
		case w == nil:
			return math.NaN(), "not measured"
		case w.ok == 0:
			return math.NaN(), "every run failed"
		}
		return metric(w), ""
	}
}

func cpuUs(r *row) float64 { return r.cpuUs }
func p99(r *row) float64   { return r.latency[2] }

// goals are the targets for the waypoint.
func goals(o *options) []goal {
	gs := []goal{
		{label: "http1", what: "http1: waypoint CPU per request / nginx's (1 worker)", value: ratio("http1", "nginx", cpuUs), limit: 1.0, atMost: true, unit: "x"},
		{label: "http1", what: "http1: waypoint CPU per request / Caddy's", value: ratio("http1", "caddy", cpuUs), limit: 0.3, atMost: true, unit: "x"},
		{label: "http1", what: "http1: waypoint p99 / nginx's", value: ratio("http1", "nginx", p99), limit: 1.0, atMost: true, unit: "x"},
		{label: "grpc", what: "grpc: waypoint CPU per request / nginx grpc_pass's", value: ratio("grpc", "nginx", cpuUs), limit: 1.0, atMost: true, unit: "x"},
		{label: "hbone-http1", what: fmt.Sprintf("hbone-http1 at %.0f rps: waypoint CPU per request", o.hboneQPS), value: own("hbone-http1", cpuUs), limit: 50, atMost: true, unit: " µs"},
		{label: "hbone-http1", what: "hbone-http1: waypoint peak RSS", value: own("hbone-http1", func(r *row) float64 { return r.peakMiB }), limit: 30, atMost: true, unit: " MiB"},
	}
	for _, n := range o.bulkStreams {
		label := fmt.Sprintf("bulk-%d", n)
		gs = append(gs, goal{label: label, what: fmt.Sprintf("bulk TCP through HBONE, %d stream(s): bytes per waypoint CPU-second", n),
			value: own(label, func(r *row) float64 { return r.bytesPerCPUSec / 1e9 }), limit: 1.1, unit: " GB"})
	}
	return append(gs, goal{label: "idle", what: fmt.Sprintf("idle: waypoint RSS per HBONE stream (%d streams)", o.idleStreams),
		value: own("idle", func(r *row) float64 { return r.kibPerStream }), limit: 10, atMost: true, unit: " KiB"})
}

// writeGoals writes the ratios of every proxy to nginx (and the waypoint's
// to Caddy in the plaintext scenarios), then each target with PASS or
// FAIL; targets of scenarios not run are left out.
func writeGoals(w io.Writer, o *options, rows []*row) {
	f := func(label, proxy string) *row {
		for _, r := range rows {
			if r.label == label && r.proxy == proxy {
				return r
			}
		}
		return nil
	}
	fmt.Fprintln(w, "Ratios to nginx (medians; CPU is CPU per request of the proxy's processes alone):")
	any := false
	for _, r := range rows {
		n := f(r.label, "nginx")
		if scenarioByName(r.scenario).kind != kindRequests || r.proxy == "nginx" || n == nil || r.ok == 0 || n.ok == 0 {
			continue
		}
		any = true
		ref := "nginx"
		if scenarioByName(r.scenario).hbone {
			ref = "nginx TLS chain"
		}
		line := fmt.Sprintf("  %-12s %-8s CPU %sx %s, p99 %sx", r.label, r.proxy, num(r.cpuUs/n.cpuUs, 2), ref, num(p99(r)/p99(n), 2))
		if scenarioByName(r.scenario).closed {
			line += fmt.Sprintf(", rps %sx", num(r.rps/n.rps, 2))
		}
		if c := f(r.label, "caddy"); r.proxy == "waypoint" && c != nil && c.ok > 0 {
			line += fmt.Sprintf("; CPU %sx caddy", num(r.cpuUs/c.cpuUs, 2))
		}
		fmt.Fprintln(w, line)
	}
	if !any {
		fmt.Fprintln(w, "  (nginx and another proxy were not both measured)")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	for _, g := range goals(o) {
		ran := false
		for _, r := range rows {
			ran = ran || r.label == g.label
		}
		if !ran {
			continue
		}
		v, why := g.value(f)
		cmp := ">="
		if g.atMost {
			cmp = "<="
		}
		verdict := "FAIL"
		switch {
		case math.IsNaN(v):
			verdict = "n/a (" + why + ")"
		case g.atMost && v <= g.limit, !g.atMost && v >= g.limit:
			verdict = "PASS"
		}
		got := sig(v) + g.unit
		if math.IsNaN(v) {
			got = "n/a"
		}
		fmt.Fprintf(w, "  %-4s %s: %s (target %s %s%s)\n", verdictWord(verdict), g.what, got, cmp, num(g.limit, 1), g.unit)
		if verdict != "PASS" && verdict != "FAIL" {
			fmt.Fprintf(w, "       %s\n", verdict)
		}
	}
}

func verdictWord(v string) string {
	if v == "PASS" || v == "FAIL" {
		return v
	}
	return "n/a"
}

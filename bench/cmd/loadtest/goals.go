package main

import (
	"fmt"
	"io"
	"math"
	"strings"
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

// ratio is proxy's metric over ref's in the same scenario (or bulk
// variant); name shows them in the reason when there is no value.
func ratio(label, proxy, ref string, name func(string) string, metric func(*row) float64) func(find) (float64, string) {
	return func(f find) (float64, string) {
		w, n := f(label, proxy), f(label, ref)
		switch {
		case w == nil || n == nil:
			return math.NaN(), name(proxy) + " and " + name(ref) + " were not both measured"
		case w.ok == 0 || n.ok == 0:
			return math.NaN(), "every run of one of them failed"
		}
		return metric(w) / metric(n), ""
	}
}

// own is proxy's metric.
func own(label, proxy string, name func(string) string, metric func(*row) float64) func(find) (float64, string) {
	return func(f find) (float64, string) {
		w := f(label, proxy)
		switch {
		case w == nil:
			return math.NaN(), name(proxy) + " not measured"
		case w.ok == 0:
			return math.NaN(), "every run failed"
		}
		return metric(w), ""
	}
}

func cpuUs(r *row) float64 { return r.cpuUs }
func p99(r *row) float64   { return r.latency[2] }

// Targets of issue 17: CPU per request at a second core, and unset as in
// a pod, within this factor of one core's.
const coreTax = 1.15

// goals are the waypoint's targets. The comparisons with nginx, HAProxy
// and Caddy are the GOMAXPROCS=1 variant's (one core, as nginx's one
// worker); each other variant is held to coreTax of it; bulk holds for
// every variant, idle for the first; -fixed variants (--scale-procs=false)
// are measured for comparison and held to nothing. name shows a proxy.
func goals(o *options, name func(string) string) []goal {
	one := o.variantWith(1)
	if one == "" {
		// Not measured: its targets say n/a.
		one = "waypoint-1"
		known := name
		name = func(p string) string {
			if p == one {
				return variant{gomaxprocs: 1}.name(0)
			}
			return known(p)
		}
	}
	w1 := name(one)
	gs := []goal{
		{label: "http1", what: "http1: " + w1 + " CPU per request / nginx's (1 worker)", value: ratio("http1", one, "nginx", name, cpuUs), limit: 1.0, atMost: true, unit: "x"},
		{label: "http1", what: "http1: " + w1 + " CPU per request / Caddy's", value: ratio("http1", one, "caddy", name, cpuUs), limit: 0.3, atMost: true, unit: "x"},
		{label: "http1", what: "http1: " + w1 + " p99 / nginx's", value: ratio("http1", one, "nginx", name, p99), limit: 1.0, atMost: true, unit: "x"},
		{label: "grpc", what: "grpc: " + w1 + " CPU per request / nginx grpc_pass's", value: ratio("grpc", one, "nginx", name, cpuUs), limit: 1.0, atMost: true, unit: "x"},
		{label: "hbone-http1", what: "hbone-http1: " + w1 + " CPU per request / the nginx TLS chain's", value: ratio("hbone-http1", one, "nginx", name, cpuUs), limit: 0.9, atMost: true, unit: "x"},
		{label: "hbone-http1", what: fmt.Sprintf("hbone-http1 at %.0f rps: %s CPU per request", o.hboneQPS, w1), value: own("hbone-http1", one, name, cpuUs), limit: 50, atMost: true, unit: " µs"},
		{label: "hbone-http1", what: "hbone-http1: " + w1 + " peak RSS", value: own("hbone-http1", one, name, func(r *row) float64 { return r.peakMiB }), limit: 30, atMost: true, unit: " MiB"},
	}
	for _, label := range []string{"http1", "grpc", "hbone-http1"} {
		for _, v := range o.variants {
			if v.id == one || v.fixed {
				continue // a -fixed variant is shown against it, not held to it
			}
			gs = append(gs, goal{label: label, what: fmt.Sprintf("%s: %s CPU per request / %s's", label, name(v.id), w1),
				value: ratio(label, v.id, one, name, cpuUs), limit: coreTax, atMost: true, unit: "x"})
		}
	}
	for _, v := range o.variants {
		if v.fixed {
			continue
		}
		for _, n := range o.bulkStreams {
			label := fmt.Sprintf("bulk-%d", n)
			gs = append(gs, goal{label: label, what: fmt.Sprintf("bulk TCP through HBONE, %d stream(s): bytes per %s CPU-second", n, name(v.id)),
				value: own(label, v.id, name, func(r *row) float64 { return r.bytesPerCPUSec / 1e9 }), limit: 0.8, unit: " GB"})
		}
	}
	first := o.variants[0].id
	return append(gs, goal{label: "idle", what: fmt.Sprintf("idle: %s RSS per HBONE stream (%d streams)", name(first), o.idleStreams),
		value: own("idle", first, name, func(r *row) float64 { return r.kibPerStream }), limit: 10, atMost: true, unit: " KiB"})
}

// writeGoals writes the ratios of every proxy to nginx (and the waypoint
// variants' to Caddy in the plaintext scenarios), those of the waypoint's
// other variants to its GOMAXPROCS=1 one with their context switches per
// request, then each target with PASS or FAIL; targets of scenarios not
// run are left out.
func writeGoals(w io.Writer, o *options, rows []*row) {
	f := func(label, proxy string) *row {
		for _, r := range rows {
			if r.label == label && r.proxy == proxy {
				return r
			}
		}
		return nil
	}
	name := func(proxy string) string {
		for _, r := range rows {
			if r.proxy == proxy && r.name != "" {
				return r.name
			}
		}
		if v, ok := o.variant(proxy); ok {
			return v.name(0)
		}
		return proxy
	}
	width := 8
	for _, r := range rows {
		width = max(width, len(name(r.proxy)))
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
		line := fmt.Sprintf("  %-12s %-*s CPU %sx %s, p99 %sx", r.label, width, name(r.proxy), num(r.cpuUs/n.cpuUs, 2), ref, num(p99(r)/p99(n), 2))
		if scenarioByName(r.scenario).closed {
			line += fmt.Sprintf(", rps %sx", num(r.rps/n.rps, 2))
		}
		if c := f(r.label, "caddy"); isWaypoint(r.proxy) && c != nil && c.ok > 0 {
			line += fmt.Sprintf("; CPU %sx caddy", num(r.cpuUs/c.cpuUs, 2))
		}
		fmt.Fprintln(w, line)
	}
	if !any {
		fmt.Fprintln(w, "  (nginx and another proxy were not both measured)")
	}
	if one := o.variantWith(1); one != "" && len(o.variants) > 1 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Waypoint variants to %s (medians; voluntary context switches per request, the variant's then GOMAXPROCS=1's):\n", name(one))
		any = false
		for _, r := range rows {
			b := f(r.label, one)
			if scenarioByName(r.scenario).kind != kindRequests || !isWaypoint(r.proxy) || r.proxy == one || b == nil || r.ok == 0 || b.ok == 0 {
				continue
			}
			any = true
			line := fmt.Sprintf("  %-12s %-*s CPU %sx, p99 %sx, ctx switches/req %s vs %s (%sx)", r.label, width, name(r.proxy),
				num(r.cpuUs/b.cpuUs, 2), num(p99(r)/p99(b), 2), sig(r.ctxPerReq), sig(b.ctxPerReq), num(r.ctxPerReq/b.ctxPerReq, 2))
			if n := f(r.label, "nginx"); n != nil && n.ok > 0 {
				line += fmt.Sprintf("; nginx %s", sig(n.ctxPerReq))
			}
			fmt.Fprintln(w, line)
		}
		if !any {
			fmt.Fprintln(w, "  (no request scenario measured two variants)")
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	for _, g := range goals(o, name) {
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
		fmt.Fprintf(w, "  %-4s %s: %s (target %s %s%s)\n", verdictWord(verdict), g.what, got, cmp, strings.TrimSuffix(num(g.limit, 2), "0"), g.unit)
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

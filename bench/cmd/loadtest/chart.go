package main

import (
	"image/color"

	"gonum.org/v1/plot/vg"

	"github.com/gowaypoint/waypoint/bench/internal/chart"
)

// proxyColors keeps each proxy's colour the same in every chart; the
// waypoint's variants are blues, in -gomaxprocs order (variantColors).
var proxyColors = map[string]color.Color{
	"nginx":   chart.Green,
	"haproxy": chart.Orange,
	"caddy":   chart.Purple,
}

var variantColors = []color.Color{
	chart.Blue,
	color.RGBA{R: 0x6b, G: 0xae, B: 0xd6, A: 0xff},
	color.RGBA{R: 0x08, G: 0x30, B: 0x6b, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

// colorOf is the colour of proxy's bars, a variant's by its place.
func colorOf(proxy string, variantIndex int) color.Color {
	if !isWaypoint(proxy) {
		return proxyColors[proxy]
	}
	if variantIndex < len(variantColors) {
		return variantColors[variantIndex]
	}
	return chart.Gray
}

// writeChart draws the request scenarios' medians as grouped bars, CPU µs
// per request above and p99 latency below, one bar per proxy, into a PNG.
// It reports false when there is nothing to draw.
func writeChart(path, title string, rows []*row) (bool, error) {
	var labels []string
	seen := map[string]bool{}
	byKey := map[string]*row{}
	for _, r := range rows {
		if scenarioByName(r.scenario).kind != kindRequests {
			continue
		}
		if !seen[r.label] {
			seen[r.label] = true
			labels = append(labels, r.label)
		}
		byKey[r.label+"/"+r.proxy] = r
	}
	// The proxies as they first appear (the run's order: the waypoint's
	// variants, then nginx, HAProxy, Caddy), with their shown names.
	var proxies []string
	names := map[string]string{}
	for _, r := range rows {
		if byKey[r.label+"/"+r.proxy] == r && names[r.proxy] == "" {
			proxies = append(proxies, r.proxy)
			names[r.proxy] = r.name
			if r.name == "" {
				names[r.proxy] = r.proxy
			}
		}
	}
	if len(labels) == 0 {
		return false, nil
	}
	// series is one bar per proxy in each scenario's group: metric of the
	// proxy's row, none where it did not run or served nothing.
	series := func(metric func(*row) float64) []chart.BarSeries {
		out := make([]chart.BarSeries, len(proxies))
		variant := 0
		for i, proxy := range proxies {
			out[i] = chart.BarSeries{Name: names[proxy], Color: colorOf(proxy, variant), Values: make([]float64, len(labels))}
			if isWaypoint(proxy) {
				variant++
			}
			for j, l := range labels {
				if r := byKey[l+"/"+proxy]; r != nil && r.ok > 0 {
					out[i].Values[j] = metric(r)
				}
			}
		}
		return out
	}
	cpu, err := chart.Bars(title, "CPU µs per request (proxy processes only)", labels, series(cpuUs), true)
	if err != nil {
		return false, err
	}
	lat, err := chart.Bars("", "p99 latency, ms", labels, series(p99), false)
	if err != nil {
		return false, err
	}
	width := vg.Length(160+max(90, 18*len(proxies))*len(labels)) * vg.Millimeter / 4
	if err := chart.WritePNG(path, max(width, 16*vg.Centimeter), 18*vg.Centimeter, cpu, lat); err != nil {
		return false, err
	}
	return true, nil
}

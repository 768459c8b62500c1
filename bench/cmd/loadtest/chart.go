package main

import (
	"image/color"

	"gonum.org/v1/plot/vg"

	"github.com/gowaypoint/waypoint/bench/internal/chart"
)

// proxyColors keeps each proxy's colour the same in every chart.
var proxyColors = map[string]color.Color{
	"waypoint": chart.Blue,
	"nginx":    chart.Green,
	"haproxy":  chart.Orange,
	"caddy":    chart.Purple,
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
	var proxies []string
	for _, p := range allProxies {
		for _, l := range labels {
			if byKey[l+"/"+p] != nil {
				proxies = append(proxies, p)
				break
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
		for i, proxy := range proxies {
			out[i] = chart.BarSeries{Name: proxy, Color: proxyColors[proxy], Values: make([]float64, len(labels))}
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
	width := vg.Length(160+90*len(labels)) * vg.Millimeter / 4
	if err := chart.WritePNG(path, max(width, 16*vg.Centimeter), 18*vg.Centimeter, cpu, lat); err != nil {
		return false, err
	}
	return true, nil
}

package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// proxyColors keeps each proxy's colour the same in every chart.
var proxyColors = map[string]color.Color{
	"waypoint": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"nginx":    color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"haproxy":  color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"caddy":    color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
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
	cpu, err := barPlot(title, "CPU µs per request (proxy processes only)", labels, proxies, byKey, cpuUs, true)
	if err != nil {
		return false, err
	}
	lat, err := barPlot("", "p99 latency, ms", labels, proxies, byKey, p99, false)
	if err != nil {
		return false, err
	}
	width := vg.Length(160+90*len(labels)) * vg.Millimeter / 4
	img := vgimg.NewWith(vgimg.UseWH(max(width, 16*vg.Centimeter), 18*vg.Centimeter), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{cpu}, {lat}}, tiles, dc)
	cpu.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return false, err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, f.Close()
}

// barPlot is one panel: a group of bars per scenario label, a bar per proxy.
func barPlot(title, ylabel string, labels, proxies []string, byKey map[string]*row, metric func(*row) float64, legend bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	barWidth := vg.Points(11)
	top := 0.0
	for i, proxy := range proxies {
		vals := make(plotter.Values, len(labels))
		for j, l := range labels {
			if r := byKey[l+"/"+proxy]; r != nil && r.ok > 0 {
				if v := metric(r); !math.IsNaN(v) && !math.IsInf(v, 0) && v > 0 {
					vals[j] = v
					top = max(top, v)
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		bars.Color = proxyColors[proxy]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(proxies)-1)/2) * barWidth
		p.Add(bars)
		if legend {
			p.Legend.Add(proxy, bars)
		}
	}
	// Room above the tallest bar for the legend, up to a round number.
	hi := max(top, 1) * 1.25
	step := math.Pow(10, math.Floor(math.Log10(hi)))
	p.Y.Min, p.Y.Max = 0, math.Ceil(hi/step)*step
	p.Add(plotter.NewGrid())
	p.NominalX(labels...)
	return p, nil
}

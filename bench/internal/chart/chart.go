// Package chart draws the benchmark tools' PNG charts with gonum/plot:
// panels of grouped bars (make loadtest) or of lines over time (make
// soak), stacked one above the other in one image with their data areas
// aligned.
//
// A panel is a *plot.Plot built by Bars or Lines; WritePNG draws several
// into one file. Nothing here is shared between calls: every function
// builds new values and is safe for concurrent use.
package chart

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The palette (matplotlib's first colours), so that one thing keeps its
// colour in every chart.
var (
	Blue   color.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	Orange color.Color = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	Green  color.Color = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	Red    color.Color = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	Purple color.Color = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	Gray   color.Color = color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}
)

// DPI is the resolution WritePNG draws at.
const DPI = 110

// BarSeries is one bar in each group of a bar panel: Values[i] is its
// height in group i; 0, NaN and ±Inf draw no bar.
type BarSeries struct {
	Name   string
	Color  color.Color
	Values []float64
}

// Bars is a panel of grouped bars: a group per label, a bar per series,
// side by side. The Y axis starts at 0 and ends at a round number a
// quarter above the tallest bar, room for the legend (drawn when legend
// is true, at the top).
func Bars(title, ylabel string, labels []string, series []BarSeries, legend bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	barWidth := vg.Points(11)
	top := 0.0
	for i, s := range series {
		if len(s.Values) != len(labels) {
			return nil, fmt.Errorf("chart: series %q has %d values for %d labels", s.Name, len(s.Values), len(labels))
		}
		vals := make(plotter.Values, len(labels))
		for j, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) && v > 0 {
				vals[j] = v
				top = max(top, v)
			}
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		bars.Color = s.Color
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(series)-1)/2) * barWidth
		p.Add(bars)
		if legend {
			p.Legend.Add(s.Name, bars)
		}
	}
	hi := max(top, 1) * 1.25
	step := math.Pow(10, math.Floor(math.Log10(hi)))
	p.Y.Min, p.Y.Max = 0, math.Ceil(hi/step)*step
	p.Add(plotter.NewGrid())
	p.NominalX(labels...)
	return p, nil
}

// LineSeries is one line of a line panel: the points (X[i], Y[i]). A NaN
// Y leaves a gap (the line stops and starts again after it).
type LineSeries struct {
	Name   string
	Color  color.Color
	Dashed bool
	X, Y   []float64
}

// LineOptions shape a line panel. The zero value is a linear Y axis from
// 0, no markers.
type LineOptions struct {
	// LogY draws the Y axis on a log scale (values ≤ 0 are left out), with
	// ticks at 1, 2 and 5 times the powers of ten.
	LogY bool
	// FreeY lets a linear Y axis start at the data's minimum instead of 0.
	FreeY bool
	// MarkX draws a dotted gray vertical line at each of these X values
	// (the end of a warm-up, say), labelled MarkLabel in the legend.
	MarkX     []float64
	MarkLabel string
	// XMin and XMax fix the X axis (panels stacked with WritePNG then
	// share it); both 0: the data's range.
	XMin, XMax float64
}

// Lines is a panel of lines sharing one X axis, with a legend of the
// series (and the marker) at the top left, above the data.
func Lines(title, xlabel, ylabel string, series []LineSeries, o LineOptions) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	xlo, xhi := math.Inf(1), math.Inf(-1)
	entries := 0 // in the legend
	for _, s := range series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("chart: series %q has %d X and %d Y", s.Name, len(s.X), len(s.Y))
		}
		var drawn bool
		for _, seg := range segments(s.X, s.Y, o.LogY) {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return nil, fmt.Errorf("chart: series %q: %w", s.Name, err)
			}
			l.Color = s.Color
			l.Width = vg.Points(1.2)
			if s.Dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			p.Add(l)
			if !drawn {
				p.Legend.Add(s.Name, l)
				entries++
				drawn = true
			}
			for _, pt := range seg {
				lo, hi = min(lo, pt.Y), max(hi, pt.Y)
				xlo, xhi = min(xlo, pt.X), max(xhi, pt.X)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return nil, errors.New("chart: " + title + ": nothing to draw")
	}
	if len(o.MarkX) > 0 {
		for i, x := range o.MarkX {
			m, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
			if err != nil {
				return nil, err
			}
			m.Color = Gray
			m.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
			p.Add(m)
			if i == 0 && o.MarkLabel != "" {
				p.Legend.Add(o.MarkLabel, m)
				entries++
			}
			xlo, xhi = min(xlo, x), max(xhi, x)
		}
	}
	p.X.Min, p.X.Max = xlo, xhi
	if o.XMin != 0 || o.XMax != 0 {
		p.X.Min, p.X.Max = o.XMin, o.XMax
	}
	// The legend's lines take the top of the panel, above the data: about
	// 6% of a panel's height each in the images WritePNG draws.
	room := 1 - 0.06*float64(entries) - 0.04
	if o.LogY {
		p.Y.Scale = plot.LogScale{}
		llo, lhi := math.Log10(logFloor(lo)), math.Log10(hi)
		p.Y.Min, p.Y.Max = logFloor(lo), logCeil(math.Pow(10, llo+max(lhi-llo, 1)/room))
		p.Y.Tick.Marker = logTicks{}
	} else {
		if !o.FreeY {
			lo = 0
		}
		span := hi - lo
		if span <= 0 {
			span = max(math.Abs(hi), 1)
		}
		p.Y.Min, p.Y.Max = lo, lo+span/room
	}
	return p, nil
}

// segments splits the points at NaN Ys (and, on a log scale, at Ys ≤ 0).
func segments(xs, ys []float64, logY bool) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i := range xs {
		y := ys[i]
		if math.IsNaN(y) || math.IsInf(y, 0) || math.IsNaN(xs[i]) || (logY && y <= 0) {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: xs[i], Y: y})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// logFloor and logCeil round to the 1-2-5 steps below and above v > 0.
func logFloor(v float64) float64 {
	d := math.Pow10(int(math.Floor(math.Log10(v))))
	for _, m := range []float64{5, 2, 1} {
		if m*d <= v {
			return m * d
		}
	}
	return d
}

func logCeil(v float64) float64 {
	d := math.Pow10(int(math.Floor(math.Log10(v))))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*d >= v {
			return m * d
		}
	}
	return 10 * d
}

// logTicks labels 1, 2 and 5 times each power of ten, with minor ticks
// at the other multiples.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for d := math.Pow10(int(math.Floor(math.Log10(lo)))); d <= hi; d *= 10 {
		for m := 1; m < 10; m++ {
			v := float64(m) * d
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// WritePNG draws panels one above the other into a width × height PNG at
// path, their data areas aligned, with a margin around each.
func WritePNG(path string, width, height vg.Length, panels ...*plot.Plot) error {
	if len(panels) == 0 {
		return errors.New("chart: no panel to draw")
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(DPI))
	dc := draw.New(img) // white background: vgimg's default
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

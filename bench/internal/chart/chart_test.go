package chart

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestWritePNG(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	lines, err := Lines("soak", "minutes", "MiB", []LineSeries{{Name: "RSS", Color: Red, X: xs, Y: []float64{10, 12, math.NaN(), 12, 13}}},
		LineOptions{MarkX: []float64{1.5}, MarkLabel: "warm-up"})
	if err != nil {
		t.Fatal(err)
	}
	logp, err := Lines("", "minutes", "ms", []LineSeries{{Name: "p50", Color: Blue, X: xs, Y: []float64{0.4, 0.5, 0, 0.6, 30}}}, LineOptions{LogY: true})
	if err != nil {
		t.Fatal(err)
	}
	bars, err := Bars("load", "µs", []string{"a", "b"}, []BarSeries{{Name: "x", Color: Green, Values: []float64{1, math.Inf(1)}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.png")
	if err := WritePNG(path, 10*vg.Centimeter, 15*vg.Centimeter, lines, logp, bars); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	wantW := int(math.Round(10 / 2.54 * DPI))
	if b := img.Bounds(); b.Dx() != wantW {
		t.Errorf("width %d px, want %d (10 cm at %d dpi)", b.Dx(), wantW, DPI)
	}
	for _, c := range []color.Color{Red, Blue, Green} {
		if !hasColor(img, c) {
			t.Errorf("no pixel of %v: a series was not drawn", c)
		}
	}
}

func hasColor(img image.Image, c color.Color) bool {
	r0, g0, b0, _ := c.RGBA()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r == r0 && g == g0 && bl == b0 {
				return true
			}
		}
	}
	return false
}

func TestPanelErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func() (*plot.Plot, error)
	}{
		{"bars with too few values", func() (*plot.Plot, error) {
			return Bars("", "", []string{"a", "b"}, []BarSeries{{Name: "x", Values: []float64{1}}}, false)
		}},
		{"lines of different lengths", func() (*plot.Plot, error) {
			return Lines("", "", "", []LineSeries{{Name: "x", X: []float64{1, 2}, Y: []float64{1}}}, LineOptions{})
		}},
		{"only gaps", func() (*plot.Plot, error) {
			return Lines("", "", "", []LineSeries{{Name: "x", X: []float64{1, 2}, Y: []float64{math.NaN(), 0}}}, LineOptions{LogY: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := tc.make(); err == nil {
				t.Errorf("got a panel %v, want an error", p)
			}
		})
	}
	if err := WritePNG(filepath.Join(t.TempDir(), "none.png"), vg.Centimeter, vg.Centimeter); err == nil {
		t.Error("WritePNG of no panel: want an error")
	}
}

func TestLogSteps(t *testing.T) {
	for _, tc := range []struct{ v, floor, ceil float64 }{
		{0.7, 0.5, 1}, {1, 1, 1}, {3, 2, 5}, {42, 20, 50}, {120, 100, 200}, {600, 500, 1000},
	} {
		if got := logFloor(tc.v); math.Abs(got-tc.floor) > 1e-9 {
			t.Errorf("logFloor(%v) = %v, want %v", tc.v, got, tc.floor)
		}
		if got := logCeil(tc.v); math.Abs(got-tc.ceil) > 1e-9 {
			t.Errorf("logCeil(%v) = %v, want %v", tc.v, got, tc.ceil)
		}
	}
	var labels []string
	for _, tk := range (logTicks{}).Ticks(0.5, 20) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	want := []string{"0.5", "1", "2", "5", "10", "20"}
	if len(labels) != len(want) {
		t.Fatalf("labels %v, want %v", labels, want)
	}
	for i := range want {
		if labels[i] != want[i] {
			t.Errorf("labels %v, want %v", labels, want)
			break
		}
	}
}

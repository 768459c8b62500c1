package procs

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// drive feeds s one window of Interval per entry of busy (cores kept
// busy in that window) and returns the Ps after each.
func drive(t *testing.T, ceiling int, busy []float64) (got []int, set []int) {
	t.Helper()
	var cpu time.Duration
	o := Options{
		cpuTime:  func() time.Duration { return cpu },
		setProcs: func(n int) { set = append(set, n) },
	}
	s := New(ceiling, o)
	now := time.Unix(1000, 0)
	s.start(now)
	for _, b := range busy {
		now = now.Add(DefaultInterval)
		cpu += time.Duration(b * float64(DefaultInterval))
		s.sample(now)
		got = append(got, s.Procs())
	}
	return got, set
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestScalerFollowsTheLoad(t *testing.T) {
	windows := int(DefaultDownAfter / DefaultInterval) // windows in DownAfter
	tests := []struct {
		name    string
		ceiling int
		busy    []float64
		// want is the Ps after the last window; wantMax the most Ps seen.
		want, wantMax int
	}{
		{"light load stays on one P", 2, repeat(0.3, 50), 1, 1},
		{"a saturated P brings a second", 2, []float64{0.2, 0.95}, 2, 2},
		{"the second stays while the load needs more than one P", 4, append([]float64{0.9}, repeat(1.2, 3*windows)...), 2, 2},
		{"up to the ceiling only", 2, repeat(2, 10), 2, 2},
		{"each window adds at most one", 4, []float64{0.9, 1.9, 3.9}, 4, 4},
		{"a P goes once the load stayed low for DownAfter", 2, append([]float64{0.9}, repeat(0.3, windows)...), 1, 2},
		{"not before DownAfter", 2, append([]float64{0.9}, repeat(0.3, windows-1)...), 2, 2},
		{"a busy window restarts the low stretch", 2,
			slices.Concat([]float64{0.9}, repeat(0.3, windows-2), []float64{0.7}, repeat(0.3, windows-1)), 2, 2},
		{"down one P at a time", 4,
			slices.Concat([]float64{0.9, 1.9, 2.9}, repeat(0.2, windows), repeat(0.2, windows), repeat(0.2, windows)), 1, 4},
		{"between the thresholds nothing moves", 2, append([]float64{0.9}, repeat(0.65, 4*windows)...), 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := drive(t, tc.ceiling, tc.busy)
			if last := got[len(got)-1]; last != tc.want || slices.Max(got) != tc.wantMax {
				t.Errorf("Ps after each window %v: last %d (want %d), most %d (want %d)", got, last, tc.want, slices.Max(got), tc.wantMax)
			}
		})
	}
}

func TestScalerSetsWhatItReports(t *testing.T) {
	got, set := drive(t, 3, slices.Concat([]float64{0.9, 1.9}, repeat(0.1, 2*int(DefaultDownAfter/DefaultInterval))))
	// start sets 1; then 2, 3 and back down to 1.
	if want := []int{1, 2, 3, 2, 1}; !slices.Equal(set, want) {
		t.Errorf("GOMAXPROCS set to %v, want %v (Ps seen %v)", set, want, got)
	}
}

func TestRunGivesBackEveryPAtTheEnd(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)

	var set []int
	s := New(3, Options{Interval: time.Hour, setProcs: func(n int) { set = append(set, n) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	cancel()
	<-done
	if want := []int{1, 3}; !slices.Equal(set, want) {
		t.Errorf("GOMAXPROCS set to %v, want %v", set, want)
	}

	set = nil
	New(1, Options{setProcs: func(n int) { set = append(set, n) }}).Run(context.Background())
	if len(set) != 0 {
		t.Errorf("a ceiling of one P set GOMAXPROCS to %v; want it left alone", set)
	}
}

func TestProcessCPUAdvances(t *testing.T) {
	a := processCPU()
	for x := 0; processCPU() == a; x++ {
		_ = x * x
	}
	if b := processCPU(); b <= a {
		t.Errorf("process CPU went from %s to %s", a, b)
	}
}

// TestRunTakesASecondPUnderLoad runs the real Scaler (getrusage,
// runtime.GOMAXPROCS) against two goroutines that keep busy, with a low
// UpAt so that a shared machine giving this process part of a core is
// enough, and waits until it uses the second P.
func TestRunTakesASecondPUnderLoad(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)

	s := New(2, Options{Interval: 20 * time.Millisecond, UpAt: 0.2})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	for range 2 {
		wg.Go(func() {
			for x := 0; ctx.Err() == nil; x++ {
				_ = x * x
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Procs() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := s.Procs()
	cancel()
	wg.Wait()
	if got != 2 {
		t.Fatalf("Ps in use under load %d, want 2", got)
	}
	if runtime.GOMAXPROCS(0) != 2 {
		t.Errorf("GOMAXPROCS after Run %d, want the ceiling 2 back", runtime.GOMAXPROCS(0))
	}
}

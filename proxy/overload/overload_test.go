package overload

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/internal/memtest"
	"github.com/gowaypoint/waypoint/xds"
)

func TestTriggerValue(t *testing.T) {
	th := xds.OverloadTrigger{Threshold: 0.9}
	sc := xds.OverloadTrigger{Scaled: true, Scaling: 0.8, Saturation: 0.9}
	tests := []struct {
		tr   xds.OverloadTrigger
		p    float64
		want float64
	}{
		{th, 0.5, 0}, {th, 0.9, 1}, {th, 1.2, 1},
		{sc, 0.7, 0}, {sc, 0.8, 0}, {sc, 0.85, 0.5}, {sc, 0.9, 1}, {sc, 2, 1},
	}
	for _, tc := range tests {
		if got := value(tc.tr, tc.p); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("value(%+v, %v) = %v, want %v", tc.tr, tc.p, got, tc.want)
		}
	}
}

// fakeMemory is a Sample whose figures the test sets.
type fakeMemory struct{ inUse, free atomic.Uint64 }

func (f *fakeMemory) sample() Memory { return Memory{InUse: f.inUse.Load(), Free: f.free.Load()} }

func TestActionsFollowTheHeap(t *testing.T) {
	const limit = 1000
	cfg := Synthesise(Limits{MaxDownstreamConnections: 10, MaxHeapBytes: limit}, math.MaxInt64, 0)
	mem := &fakeMemory{}
	var freed atomic.Int32
	m, err := New(cfg, Options{Sample: mem.sample, FreeOSMemory: func() { freed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	req := m.HCM("test")
	tests := []struct {
		inUse                      uint64
		keepAliveScale, resetScale float64
		refuseRequests, refuseConn bool
		shrink                     bool
	}{
		{inUse: 500},
		{inUse: 900, keepAliveScale: 0.5, shrink: true},
		{inUse: 940, keepAliveScale: 0.9, resetScale: 0.5, shrink: true},
		{inUse: 960, keepAliveScale: 1, resetScale: 0.75, refuseRequests: true, refuseConn: true, shrink: true},
		{inUse: 2000, keepAliveScale: 1, resetScale: 1, refuseRequests: true, refuseConn: true, shrink: true},
		{inUse: 100},
	}
	for _, tc := range tests {
		mem.inUse.Store(tc.inUse)
		m.Refresh()
		if got := m.Scale(xds.ActionDisableHTTPKeepAlive); math.Abs(got-tc.keepAliveScale) > 1e-9 {
			t.Errorf("in use %d: keep-alive scale %v, want %v", tc.inUse, got, tc.keepAliveScale)
		}
		if got := m.Scale(xds.ActionResetHighMemoryStream); math.Abs(got-tc.resetScale) > 1e-9 {
			t.Errorf("in use %d: reset scale %v, want %v", tc.inUse, got, tc.resetScale)
		}
		if got := req.Refuse(); got != tc.refuseRequests {
			t.Errorf("in use %d: refuse requests %v, want %v", tc.inUse, got, tc.refuseRequests)
		}
		g := m.Listener("l")
		admitted := g.Admit()
		if admitted == tc.refuseConn {
			t.Errorf("in use %d: connection admitted %v, want %v", tc.inUse, admitted, !tc.refuseConn)
		}
		if admitted {
			g.Release()
		}
		if got := m.Scale(xds.ActionShrinkHeap) >= 1; got != tc.shrink {
			t.Errorf("in use %d: shrink_heap %v, want %v", tc.inUse, got, tc.shrink)
		}
	}
	if freed.Load() != 1 {
		t.Errorf("FreeOSMemory called %d times, want once (shrink_heap, at most once per %v)", freed.Load(), ReleaseMinInterval)
	}
}

func TestGlobalConnectionLimit(t *testing.T) {
	m, err := New(Synthesise(Limits{MaxDownstreamConnections: 3}, 0, 0), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.Listener("a"), m.Listener("b")
	tests := []struct {
		gate  *ConnGate
		admit bool
	}{{a, true}, {b, true}, {a, true}, {b, false}, {a, false}}
	for i, tc := range tests {
		if got := tc.gate.Admit(); got != tc.admit {
			t.Errorf("connection %d admitted %v, want %v", i, got, tc.admit)
		}
	}
	if m.Active() != 3 {
		t.Errorf("active %d, want 3", m.Active())
	}
	a.Release()
	if !b.Admit() {
		t.Error("a connection released does not make room")
	}
	var nilGate *ConnGate
	if !nilGate.Admit() {
		t.Error("a nil gate refuses")
	}
}

func TestNewNeedsAHeapLimit(t *testing.T) {
	tests := []struct {
		name     string
		cfg      *xds.Overload
		memLimit int64
		wantErr  bool
		want     uint64
	}{
		{"size given", &xds.Overload{HeapMonitor: true, MaxHeapBytes: 10}, math.MaxInt64, false, 10},
		{"GOMEMLIMIT", &xds.Overload{HeapMonitor: true}, 1 << 30, false, 1 << 30},
		{"neither", &xds.Overload{HeapMonitor: true}, math.MaxInt64, true, 0},
		{"no heap monitor", &xds.Overload{}, math.MaxInt64, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.cfg, Options{MemoryLimit: func() int64 { return tc.memLimit }})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && m.HeapLimit() != tc.want {
				t.Errorf("heap limit %d, want %d", m.HeapLimit(), tc.want)
			}
		})
	}
}

func TestSynthesise(t *testing.T) {
	gib := float64(1 << 30)
	tests := []struct {
		name      string
		l         Limits
		memLimit  int64
		cgroup    uint64
		wantConns int64
		wantHeap  uint64
	}{
		{"defaults, no memory limit known", Limits{}, math.MaxInt64, 0, DefaultMaxDownstreamConnections, 0},
		{"GOMEMLIMIT", Limits{}, 900 << 20, 1 << 30, DefaultMaxDownstreamConnections, 900 << 20},
		{"the cgroup's limit", Limits{}, math.MaxInt64, 1 << 30, DefaultMaxDownstreamConnections, uint64(gib * DefaultCgroupShare)},
		{"flags", Limits{MaxDownstreamConnections: 7, MaxHeapBytes: 5 << 20}, 900 << 20, 0, 7, 5 << 20},
		{"no connection limit", Limits{MaxDownstreamConnections: -1}, math.MaxInt64, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Synthesise(tc.l, tc.memLimit, tc.cgroup)
			if o.MaxDownstreamConnections != tc.wantConns || o.MaxHeapBytes != tc.wantHeap || o.HeapMonitor != (tc.wantHeap > 0) {
				t.Errorf("got %+v, want %d connections, heap %d", o, tc.wantConns, tc.wantHeap)
			}
			if (len(o.Actions) > 0) != (tc.wantHeap > 0) {
				t.Errorf("%d actions with heap %d", len(o.Actions), tc.wantHeap)
			}
			if _, err := New(o, Options{MemoryLimit: func() int64 { return tc.memLimit }}); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}

type fakeStream struct {
	n     int
	reset bool
}

func (s *fakeStream) BufferedBytes() int { return s.n }
func (s *fakeStream) Reset()             { s.reset = true }

func TestResetHighMemoryStreams(t *testing.T) {
	mem := &fakeMemory{}
	m, err := New(Synthesise(Limits{MaxHeapBytes: 1000}, 0, 0), Options{Sample: mem.sample, FreeOSMemory: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	streams := []*fakeStream{{n: 4 << 20}, {n: 1 << 20}, {n: 3 << 20}, {n: 100}, {n: 2 << 20}}
	var untrack []func()
	for _, s := range streams {
		untrack = append(untrack, m.Track(s))
	}
	untrack[1]()         // gone before the pressure rises
	mem.inUse.Store(940) // reset scale 0.5: half of the 3 candidates, rounded up: the 2 largest
	m.Refresh()
	want := []bool{true, false, true, false, false}
	for i, s := range streams {
		if s.reset != want[i] {
			t.Errorf("stream %d (%d bytes) reset %v, want %v", i, s.n, s.reset, want[i])
		}
	}
}

// TestReleaseAfterABurst is the release of memory once load drops, with
// the real runtime: a burst of 256 MiB is dropped and collected; the
// scavenger alone would keep most of it for a while, the manager's two
// refreshes return it.
func TestReleaseAfterABurst(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	m, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	burst := make([][]byte, 256)
	for i := range burst {
		burst[i] = make([]byte, 1<<20)
		for j := 0; j < len(burst[i]); j += 4096 {
			burst[i][j] = 1 // touch every page
		}
	}
	runtime.KeepAlive(burst)
	burst = nil
	runtime.GC()
	before := ReadMemory()
	if before.Free < ReleaseMinFree {
		t.Fatalf("the runtime returned the burst by itself (free %d MiB): the test proves nothing", before.Free>>20)
	}
	for range ReleaseCalmRefreshes {
		m.Refresh()
	}
	after := ReadMemory()
	t.Logf("free heap held: %d MiB before, %d MiB after", before.Free>>20, after.Free>>20)
	if after.Free >= ReleaseMinFree {
		t.Errorf("free heap held after the refreshes: %d MiB, want under %d MiB", after.Free>>20, ReleaseMinFree>>20)
	}
}

// TestQuietRelease: a process that stops collecting (nothing allocates)
// gets a release after ReleaseQuietRefreshes refreshes; one that keeps
// collecting gets none; a quiet release that gave back little doubles
// the wait before the next one; after a burst (AfterBurst) the next quiet
// spell releases at once.
func TestQuietRelease(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		gcs      []uint64 // GCCycles at each refresh
		gives    uint64   // what each release gives back
		releases int
		interval time.Duration // the quiet wait after the last refresh
		burstAt  int           // AfterBurst before this refresh (0: none)
	}{
		{"collecting: no release", []uint64{1, 2, 3, 4, 5, 6, 7}, 50 * mib, 0, ReleaseMinInterval, 0},
		{"quiet: one release", []uint64{1, 1, 1, 1}, 50 * mib, 1, ReleaseMinInterval, 0},
		{"quiet, not long enough", []uint64{1, 1, 1}, 50 * mib, 0, ReleaseMinInterval, 0},
		{"quiet, little given back: the wait doubles", []uint64{1, 1, 1, 1}, mib, 1, 2 * ReleaseMinInterval, 0},
		{"quiet again within the wait: no second release", []uint64{1, 1, 1, 1, 2, 2, 2, 2}, 50 * mib, 1, ReleaseMinInterval, 0},
		{"quiet again after a burst: a second release", []uint64{1, 1, 1, 1, 2, 2, 2, 2}, 50 * mib, 2, ReleaseMinInterval, 4},
		{"little given back, then a burst: the wait is back", []uint64{1, 1, 1, 1, 2, 2, 2, 2}, mib, 2, 2 * ReleaseMinInterval, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			held := uint64(100 * mib)
			var gcs uint64
			releases := 0
			m, err := New(nil, Options{
				Sample: func() Memory { return Memory{InUse: held, GCCycles: gcs} },
				FreeOSMemory: func() {
					releases++
					held -= tc.gives
					gcs++ // the release's own GC
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tc.gcs {
				if tc.burstAt > 0 && i == tc.burstAt {
					m.AfterBurst() // a config replaced after the first release
				}
				if c > gcs {
					gcs = c
				}
				m.Refresh()
			}
			if releases != tc.releases {
				t.Errorf("%d releases, want %d", releases, tc.releases)
			}
			if got := m.releaser.interval; got != tc.interval {
				t.Errorf("quiet wait %v, want %v", got, tc.interval)
			}
		})
	}
}

// TestReturnMemoryDropsTheBinarysPages: ReturnMemory also lets go of the
// binary's code and read-only pages that a burst faulted in, which the
// heap's release cannot.
func TestReturnMemoryDropsTheBinarysPages(t *testing.T) {
	before := memtest.FileRSS(t)
	ReturnMemory()
	if after := memtest.FileRSS(t); after >= before {
		t.Errorf("file-backed resident pages %d KiB before ReturnMemory, %d KiB after", before>>10, after>>10)
	}
}

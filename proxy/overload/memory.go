package overload

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/internal/rss"
)

// Memory is what the heap monitor and the release after a burst read,
// from runtime/metrics (a few counters the runtime keeps: no stop of the
// world, cheap enough for every refresh).
type Memory struct {
	// InUse is the memory the process holds from the OS and uses: all
	// the runtime's memory classes but the heap's free and released
	// pages (heap objects, goroutine stacks, runtime structures). It is
	// the heap monitor's measure, as Envoy's fixed_heap measures
	// tcmalloc's heap less its free and unmapped pages.
	InUse uint64
	// Free is heap memory free and still held (not yet returned to the
	// OS): what a release would give back.
	Free uint64
	// GCCycles counts the garbage collections completed since the
	// process started; the release reads a refresh with none as a quiet
	// one.
	GCCycles uint64
}

var memorySamples = [...]string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/cycles/total:gc-cycles",
}

// ReadMemory samples the runtime's memory classes.
func ReadMemory() Memory {
	var s [len(memorySamples)]metrics.Sample
	for i, n := range memorySamples {
		s[i].Name = n
	}
	metrics.Read(s[:])
	total, free, rel := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	return Memory{InUse: total - free - rel, Free: free, GCCycles: s[3].Value.Uint64()}
}

// The release after a burst. Go's scavenger returns free heap pages to the
// OS in the background, slowly (about 1% of a CPU) and only down to about
// 10% over the heap's goal; and memory a burst's connections or streams
// held counts as in use until a GC finds it free, which, once the load is
// gone and nothing allocates, is the runtime's forced GC two minutes
// later. So after a burst the process keeps, for minutes, memory it no
// longer uses. The manager returns it (ReturnMemory: two GCs, then every
// free page given back):
//
//   - when, on ReleaseCalmRefreshes refreshes in a row, the free heap held
//     is at least ReleaseMinFree and at least half the memory in use (the
//     load has dropped, a GC has already found the memory free); at most
//     once per ReleaseMinInterval;
//   - when the process is quiet: no GC for ReleaseQuietRefreshes refreshes
//     in a row (a process under load collects every few seconds). A quiet
//     release that gave back little (less than ReleaseWorthwhile and an
//     eighth of what was held) doubles the wait before the next quiet one,
//     up to ReleaseMaxInterval, so that a process holding its memory on
//     purpose (idle streams) pays a release every two minutes at most, as
//     the runtime's own forced GC does; one that gave back more brings the
//     wait back to ReleaseMinInterval;
//   - when the shrink_heap action is saturated, every ReleaseMinInterval
//     whatever the memory.
//
// Each release costs two full GCs (a few milliseconds of CPU for the heap
// of an idle waypoint).
const (
	ReleaseMinFree        = 64 << 20
	ReleaseCalmRefreshes  = 2
	ReleaseQuietRefreshes = 3
	ReleaseMinInterval    = 10 * time.Second
	ReleaseMaxInterval    = 2 * time.Minute
	ReleaseWorthwhile     = 4 << 20
)

// ReturnMemory runs two garbage collections and returns every free page to
// the OS (runtime.GC, then debug.FreeOSMemory). Two, because what a burst
// of connections leaves is freed only by the second: a closed socket's
// file is reclaimed by a cleanup the first GC queues, and sync.Pool keeps
// what the first GC finds in its victim cache until the next. It then
// drops the binary's resident code and read-only pages (rss.TrimBinary,
// as once at start): a burst runs paths an idle waypoint does not (error
// and refusal paths, the log back-off, the GC under load), which left 4-5
// MiB of clean file-backed pages in the resident set after each attack of
// docs/hardening.md; what keeps running faults back in from the page
// cache, a page at a time (about a millisecond of minor faults).
func ReturnMemory() {
	runtime.GC()
	debug.FreeOSMemory()
	rss.TrimBinary()
}

// releaser is the release's state, touched by Refresh only.
type releaser struct {
	mu       sync.Mutex
	last     time.Time     // the last release
	calm     int           // consecutive refreshes with much free memory held
	quiet    int           // consecutive refreshes without a GC
	gcs      uint64        // GCCycles at the previous refresh
	interval time.Duration // the wait before a quiet release; 0: ReleaseMinInterval
}

func (m *Manager) release(mem Memory, shrink bool) {
	r := &m.releaser
	r.mu.Lock()
	defer r.mu.Unlock()
	if mem.Free >= ReleaseMinFree && mem.Free >= mem.InUse/2 {
		r.calm++
	} else {
		r.calm = 0
	}
	if mem.GCCycles == r.gcs {
		r.quiet++
	} else {
		r.quiet, r.gcs = 0, mem.GCCycles
	}
	if r.interval == 0 {
		r.interval = ReleaseMinInterval
	}
	wait, why := ReleaseMinInterval, ""
	switch {
	case shrink:
		why = "shrink_heap"
	case r.calm >= ReleaseCalmRefreshes:
		why = "free"
	case r.quiet >= ReleaseQuietRefreshes:
		why, wait = "quiet", r.interval
	default:
		return
	}
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < wait {
		return
	}
	r.last = now
	r.calm = 0
	m.opts.FreeOSMemory()
	released.Inc()
	after := m.opts.Sample()
	r.quiet, r.gcs = 0, after.GCCycles
	held, left := mem.InUse+mem.Free, after.InUse+after.Free
	gave := uint64(0)
	if held > left {
		gave = held - left
	}
	if why == "quiet" && gave < ReleaseWorthwhile && gave < held/8 {
		r.interval = min(2*r.interval, ReleaseMaxInterval)
	} else {
		r.interval = ReleaseMinInterval
	}
	m.log.Debug("overload: free memory returned to the OS", "why", why, "held_bytes", held, "returned_bytes", gave,
		"in_use_bytes", after.InUse, "next_quiet_release_after", r.interval)
}

// AfterBurst tells m that the process has just let go of much memory at
// once: a config replaced by a new one (the old snapshot, and what
// decoding and building the new one allocated: about 90 MB for a push of
// 3,000 Services). The next quiet release comes as soon as the process is
// quiet, whatever the wait that releases giving back little have grown
// to, and even within ReleaseMinInterval of the last one. Safe for
// concurrent use; a nil m does nothing.
func (m *Manager) AfterBurst() {
	if m == nil {
		return
	}
	r := &m.releaser
	r.mu.Lock()
	r.last, r.interval = time.Time{}, ReleaseMinInterval
	r.mu.Unlock()
}

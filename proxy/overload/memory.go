package overload

import (
	"runtime/metrics"
	"time"
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
}

var memorySamples = [...]string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

// ReadMemory samples the runtime's memory classes.
func ReadMemory() Memory {
	var s [len(memorySamples)]metrics.Sample
	for i, n := range memorySamples {
		s[i].Name = n
	}
	metrics.Read(s[:])
	total, free, rel := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	return Memory{InUse: total - free - rel, Free: free}
}

// The release after a burst. Go's scavenger returns free heap pages to the
// OS in the background, slowly (about 1% of a CPU) and only down to about
// 10% over the heap's goal; after a burst of connections or streams the
// process can keep hundreds of MiB it no longer uses for minutes. The
// manager releases them at once (debug.FreeOSMemory: a GC, then every free
// page returned) when, on ReleaseCalmRefreshes refreshes in a row, the free
// heap held is at least ReleaseMinFree and at least half the memory in use:
// the load has dropped. At most once per ReleaseMinInterval, since each
// release costs a full GC. The shrink_heap action, when saturated, releases
// on the same interval whatever the free memory.
const (
	ReleaseMinFree       = 64 << 20
	ReleaseCalmRefreshes = 2
	ReleaseMinInterval   = 10 * time.Second
)

func (m *Manager) release(mem Memory, shrink bool) {
	m.releaseMu.Lock()
	defer m.releaseMu.Unlock()
	if mem.Free >= ReleaseMinFree && mem.Free >= mem.InUse/2 {
		m.calm++
	} else {
		m.calm = 0
	}
	if !shrink && m.calm < ReleaseCalmRefreshes {
		return
	}
	now := time.Now()
	if !m.lastRelease.IsZero() && now.Sub(m.lastRelease) < ReleaseMinInterval {
		return
	}
	m.lastRelease = now
	m.calm = 0
	m.opts.FreeOSMemory()
	released.Inc()
	m.log.Debug("overload: free memory returned to the OS", "free_bytes", mem.Free, "in_use_bytes", mem.InUse, "shrink_heap", shrink)
}

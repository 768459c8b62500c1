// Package lograte throttles log lines that anyone on the network can
// cause (refused handshakes, refused streams, connections closed by a
// flood defence): at most one line per reason per interval, carrying how
// many were held back since the last one. Every event is still counted by
// its caller's metrics; what is held back at the throttled level may be
// logged at debug instead, one line per event.
//
// The path that holds a line back does not allocate: a Reason is two
// atomics, and Allow reads a clock and does a compare-and-swap. Callers
// build a line's attributes only after Allow said yes (or after checking
// that debug is enabled), so that a flood costs neither formatting nor
// allocation.
package lograte

import (
	"sync/atomic"
	"time"
)

// DefaultInterval is the interval of a Reason whose Interval is zero: one
// line per reason per second.
const DefaultInterval = time.Second

// Reason throttles the lines of one kind of event. The zero value allows a
// line per DefaultInterval. Safe for concurrent use; it must not be copied
// after first use.
type Reason struct {
	// Interval is the least time between two allowed lines; set it before
	// first use. Zero means DefaultInterval.
	Interval time.Duration

	next       atomic.Int64  // unix nanoseconds from which a line is allowed
	suppressed atomic.Uint64 // events held back since the last allowed line
}

// Allow reports whether a line may be written now and, when it may, how
// many events were held back since the previous line (which the line
// should say). An event that is not allowed is counted as held back.
func (r *Reason) Allow() (ok bool, suppressed uint64) {
	return r.allowAt(time.Now().UnixNano())
}

func (r *Reason) allowAt(now int64) (bool, uint64) {
	next := r.next.Load()
	if now < next {
		r.suppressed.Add(1)
		return false, 0
	}
	iv := r.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	if !r.next.CompareAndSwap(next, now+int64(iv)) {
		// Another goroutine took this interval's line.
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}

// Suppressed returns how many events are held back and not yet reported
// by an allowed line.
func (r *Reason) Suppressed() uint64 { return r.suppressed.Load() }

// Package lograte throttles log lines that anyone on the network can
// cause (refused handshakes, refused streams, connections closed by a
// flood defence): at most one line per reason per interval, fewer while
// the reason keeps firing, each carrying how many were held back since the
// last one. Every event is still counted by
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

// DefaultMaxIntervals is how far a reason that keeps firing spaces its
// lines when its MaxInterval is zero: ten times its interval (10 s for
// the default).
const DefaultMaxIntervals = 10

// Reason throttles the lines of one kind of event. The zero value allows a
// line per DefaultInterval. Safe for concurrent use; it must not be copied
// after first use.
//
// A reason that keeps firing writes its lines further apart: each line
// that reports events held back doubles the wait before the next, up to
// MaxInterval; a line that reports none (the reason was quiet) brings it
// back to Interval. Over a flood of a minute a reason writes nine lines
// (at 0, 1, 3, 7, 15, 25, 35, 45 and 55 s), every event still counted in
// the next line's suppressed count.
type Reason struct {
	// Interval is the least time between two allowed lines; set it before
	// first use. Zero means DefaultInterval.
	Interval time.Duration
	// MaxInterval bounds the doubled wait of a reason that keeps firing;
	// set it before first use. Zero means DefaultMaxIntervals times
	// Interval; a value below Interval means no doubling.
	MaxInterval time.Duration

	next       atomic.Int64  // unix nanoseconds from which a line is allowed
	wait       atomic.Int64  // the wait after the last allowed line; 0: Interval
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
	wait := r.nextWait(r.suppressed.Load() > 0)
	if !r.next.CompareAndSwap(next, now+wait) {
		// Another goroutine took this interval's line.
		r.suppressed.Add(1)
		return false, 0
	}
	r.wait.Store(wait)
	return true, r.suppressed.Swap(0)
}

// nextWait is the wait after a line allowed now: doubled when the reason
// kept firing since the last line, back to the interval when it did not.
func (r *Reason) nextWait(firing bool) int64 {
	iv := int64(r.Interval)
	if iv <= 0 {
		iv = int64(DefaultInterval)
	}
	if !firing {
		return iv
	}
	limit := int64(r.MaxInterval)
	if limit == 0 {
		limit = DefaultMaxIntervals * iv
	}
	w := r.wait.Load()
	if w == 0 {
		w = iv
	}
	return max(iv, min(2*w, limit))
}

// Suppressed returns how many events are held back and not yet reported
// by an allowed line.
func (r *Reason) Suppressed() uint64 { return r.suppressed.Load() }

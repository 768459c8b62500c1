// Package dialonce lets the callers that need a new connection to one peer
// share one dial. While a dial is in flight, a caller that finds no room on
// the open connections waits for that dial's outcome instead of dialling
// too, so a burst of N callers opens connections one after the other, as
// many as they need, never N at once (the rule of ztunnel's pool.rs).
//
// The pools that use it (proxy/hbone.Pool per (address, identity),
// proxy/upstream's HTTP/2 pool per endpoint) keep one [Slot] per key,
// guarded by the same mutex as the key's connections: looking for room,
// finding none and joining or starting the dial happen in one critical
// section, and the dial's connection is added where the waiters look
// before they are woken.
//
// The package starts no goroutine: the caller that starts a dial runs it
// (on a goroutine of its own, owned and waited for by its pool) and calls
// [Slot.Finish].
package dialonce

import "context"

// Slot is one key's dial in flight, if any. The zero value has none. A Slot
// is not safe for concurrent use by itself: Join and Finish are called
// with the owner's mutex held, the one that guards the key's connections.
type Slot struct {
	cur *Dial
}

// Dial is the outcome of one dial, shared by the callers waiting for it.
// Wait may be called by any number of goroutines, without the owner's
// mutex.
type Dial struct {
	done chan struct{} // closed by Finish
	err  error         // written before done is closed
}

// Join returns the dial in flight, or starts a new one. lead reports that
// the caller started it: the caller must then run the dial and call Finish
// exactly once, whatever happens. Call with the owner's mutex held.
func (s *Slot) Join() (d *Dial, lead bool) {
	if s.cur != nil {
		return s.cur, false
	}
	s.cur = &Dial{done: make(chan struct{})}
	return s.cur, true
}

// Busy reports whether a dial is in flight. Call with the owner's mutex
// held.
func (s *Slot) Busy() bool { return s.cur != nil }

// Finish ends d, the slot's dial, with err (nil: a connection was added
// where the waiters look for one): the slot is free for the next dial and
// every waiter wakes with err. Call with the owner's mutex held, after
// adding the connection.
func (s *Slot) Finish(d *Dial, err error) {
	if s.cur == d {
		s.cur = nil
	}
	d.err = err
	close(d.done)
}

// Wait blocks until d ends and returns its error, or until ctx is done and
// returns ctx.Err(). A nil error means: look again, a connection was added
// (others may have taken its room first). Call without the owner's mutex.
func (d *Dial) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

package httpconn

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/drain"
)

// waitable is a downstream transport whose first bytes can be awaited
// without a goroutine: an accepted HBONE stream, whose HTTP/2 connection's
// read loop announces each arrival (relay.Evented), and which can outlive
// the handler that was given it (tcpproxy.Detacher).
type waitable interface {
	TryRead(p []byte) (int, error)
	SetReadNotify(fn func())
	Detach() (finish func())
}

// failer is a waitable that tells, without reading, that its stream has
// failed for good (reset, or its connection lost) with nothing to read:
// an HBONE stream (hbone.StreamConn.Failed).
type failer interface {
	Failed() bool
}

// Start serves dc as Serve does, then calls done (the caller's close of
// dc). A connection that has sent nothing yet and whose transport can be
// awaited without a goroutine (an HBONE stream) is not served on the
// caller's goroutine: Start detaches it and returns at once, and its
// first bytes, its reset or the drain start the goroutine that serves it.
// An idle tunnel then holds no goroutine and no buffer, only the
// stream's state (docs/hardening.md, memory per idle stream). Otherwise
// Start returns when the connection has ended.
//
// done is called exactly once, on whichever goroutine ends the
// connection, after Serve; the stream is released to its owner (the
// HBONE server) after done.
func Start(ctx context.Context, dc *downstream.Conn, src *Source, env *Env, done func()) {
	w, ok := dc.Relayed().(waitable)
	if !ok || src.current().hcm == nil {
		Serve(ctx, dc, src, env)
		done()
		return
	}
	wt := &waiter{ctx: ctx, dc: dc, src: src, env: env, done: done, w: w}
	wt.finish = w.Detach()
	if ctx.Done() != nil {
		wt.stopDrain = drain.AfterFunc(ctx, wt.drained)
	}
	// Installed last: it may fire at once (bytes, or the stream's end,
	// already waiting), and everything above is in place by then.
	w.SetReadNotify(wt.notify)
}

// waiter holds a detached connection until its first bytes. Its state
// goes from waiting to exactly one of serving (notify) or closed
// (drained); the goroutine that wins ends the connection.
type waiter struct {
	ctx       context.Context
	dc        *downstream.Conn
	src       *Source
	env       *Env
	done      func()
	w         waitable
	finish    func()
	stopDrain func() bool // nil without a drain context
	state     atomic.Int32
}

const (
	waitWaiting int32 = iota
	waitServing
	waitClosed
)

// notify is the stream's read notification: input (or the stream's end)
// has arrived. It runs on the HTTP/2 connection's read loop and must not
// block: it starts the connection's goroutine, or, for a stream reset
// before its first byte (nothing to serve), hands it to the reaper.
func (wt *waiter) notify() {
	if !wt.state.CompareAndSwap(waitWaiting, waitServing) {
		return
	}
	if f, ok := wt.w.(failer); ok && f.Failed() {
		reap(wt)
		return
	}
	go wt.serve()
}

// reaper ends the waiting connections whose stream was reset before its
// first byte, one after the other on one goroutine, started when the
// first arrives and ended when none is left. Ending them as serve does,
// each on a goroutine of its own, would cost a goroutine per stream when
// a peer's idle streams all end at once (its connection closed): 20,000
// goroutines, whose descriptors the runtime keeps for good (about 10 MB),
// and their stacks until the next GCs (docs/hardening.md, "Memory
// returned to the OS").
var reaper struct {
	mu      sync.Mutex
	queue   []*waiter // guarded by mu
	running bool      // guarded by mu: a goroutine drains queue
}

// reap queues wt to be ended by the reaper's goroutine, starting it if
// none runs. It does not block.
func reap(wt *waiter) {
	reaper.mu.Lock()
	reaper.queue = append(reaper.queue, wt)
	start := !reaper.running
	reaper.running = true
	reaper.mu.Unlock()
	if start {
		go runReaper()
	}
}

// runReaper ends the queued connections until none is left; the queue's
// storage goes with its last batch, so that a burst leaves none behind.
func runReaper() {
	for {
		reaper.mu.Lock()
		batch := reaper.queue
		reaper.queue = nil
		if len(batch) == 0 {
			reaper.running = false
			reaper.mu.Unlock()
			return
		}
		reaper.mu.Unlock()
		for _, wt := range batch {
			wt.closeReset()
		}
	}
}

// closeReset ends a connection whose stream was reset before its first
// byte: nothing to serve (Serve would read the reset at once and return).
func (wt *waiter) closeReset() {
	wt.w.SetReadNotify(nil)
	if wt.stopDrain != nil {
		wt.stopDrain()
	}
	wt.end()
}

// serve runs the connection manager once bytes are in.
func (wt *waiter) serve() {
	wt.w.SetReadNotify(nil)
	if wt.stopDrain != nil {
		wt.stopDrain()
	}
	Serve(wt.ctx, wt.dc, wt.src, wt.env)
	wt.end()
}

// drained is the drain's callback while the connection waits: a
// connection that never sent a request is closed at once, as an idle
// HTTP/1.1 connection between requests is. It runs on the goroutine
// context.AfterFunc starts.
func (wt *waiter) drained() {
	if !wt.state.CompareAndSwap(waitWaiting, waitClosed) {
		return
	}
	wt.w.SetReadNotify(nil)
	wt.end()
}

func (wt *waiter) end() {
	wt.done()
	wt.finish()
}

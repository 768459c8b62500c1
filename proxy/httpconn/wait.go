package httpconn

import (
	"context"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/proxy/downstream"
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
		wt.stopDrain = context.AfterFunc(ctx, wt.drained)
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
// block: it starts the connection's goroutine.
func (wt *waiter) notify() {
	if wt.state.CompareAndSwap(waitWaiting, waitServing) {
		go wt.serve()
	}
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

package httpconn

import (
	"context"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/filters"
)

// streamCtx is the context of an HTTP/1.1 connection's requests when its
// connection manager has stream timers (stream_idle_timeout,
// request_timeout, max_stream_duration): one per connection, made when
// the connection starts and reused from one request to the next, so that
// a request costs no allocation for it. The stream timer cancels it, and
// the connection ends after that request, so it is never reused once
// cancelled. It carries its parent's values and no deadline.
//
// It implements filters.CancelNotifier, which the upstream's HTTP/1.1
// pool uses to watch it without allocating, and AfterFunc, so that
// context.WithCancel and context.AfterFunc on it start no goroutine.
// Safe for concurrent use.
type streamCtx struct {
	parent context.Context // read-only: values
	done   chan struct{}   // read-only; closed by cancel

	mu    sync.Mutex
	err   error      // guarded by mu: set by cancel
	seq   uint64     // guarded by mu: numbers the registrations
	hooks [4]ctxHook // guarded by mu: registrations (h nil: free)
	more  []ctxHook  // guarded by mu: registrations beyond hooks
}

// ctxHook is one NotifyCancel registration.
type ctxHook struct {
	h       filters.CancelHandler
	tag, id uint64
}

func newStreamCtx(parent context.Context) *streamCtx {
	return &streamCtx{parent: parent, done: make(chan struct{})}
}

func (x *streamCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *streamCtx) Done() <-chan struct{}       { return x.done }
func (x *streamCtx) Value(key any) any           { return x.parent.Value(key) }

func (x *streamCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

// cancel ends the context and calls the registered handlers, each on a
// goroutine of its own. Idempotent.
func (x *streamCtx) cancel() {
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		return
	}
	x.err = context.Canceled
	close(x.done)
	var run [len(x.hooks)]ctxHook
	n := 0
	for i := range x.hooks {
		if x.hooks[i].h != nil {
			run[n] = x.hooks[i]
			n++
			x.hooks[i] = ctxHook{}
		}
	}
	more := x.more
	x.more = nil
	x.mu.Unlock()
	for _, k := range run[:n] {
		go k.h.StreamCancelled(k.tag)
	}
	for _, k := range more {
		go k.h.StreamCancelled(k.tag)
	}
}

// forget drops the registrations left by the previous request (whoever
// made them failed to stop them; they concern a stream that is over), so
// that a leak does not grow over the connection's requests.
func (x *streamCtx) forget() {
	x.mu.Lock()
	x.hooks = [len(x.hooks)]ctxHook{}
	clear(x.more)
	x.more = x.more[:0]
	x.mu.Unlock()
}

// NotifyCancel implements filters.CancelNotifier without allocating while
// at most len(hooks) registrations are in place.
func (x *streamCtx) NotifyCancel(h filters.CancelHandler, tag uint64) uint64 {
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		go h.StreamCancelled(tag)
		return 0
	}
	x.seq++
	k := ctxHook{h: h, tag: tag, id: x.seq}
	placed := false
	for i := range x.hooks {
		if x.hooks[i].h == nil {
			x.hooks[i], placed = k, true
			break
		}
	}
	if !placed {
		x.more = append(x.more, k)
	}
	x.mu.Unlock()
	return k.id
}

// StopNotify implements filters.CancelNotifier.
func (x *streamCtx) StopNotify(id uint64) bool {
	if id == 0 {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.hooks {
		if x.hooks[i].id == id && x.hooks[i].h != nil {
			x.hooks[i] = ctxHook{}
			return true
		}
	}
	for i, k := range x.more {
		if k.id == id {
			x.more = append(x.more[:i], x.more[i+1:]...)
			return true
		}
	}
	return false
}

// AfterFunc is context.AfterFunc's hook for this context (context's
// afterFuncer): f runs on its own goroutine when the context is
// cancelled, unless stop is called first.
func (x *streamCtx) AfterFunc(f func()) (stop func() bool) {
	id := x.NotifyCancel(funcHandler(f), 0)
	return func() bool { return x.StopNotify(id) }
}

// funcHandler adapts a function to filters.CancelHandler.
type funcHandler func()

func (f funcHandler) StreamCancelled(uint64) { f() }

// Package drain is the drain context that every long-lived connection and
// idle stream registers on (the HBONE server's, the HBONE streams', the
// plaintext listeners'): a context.Context whose registrations
// (context.AfterFunc, context.WithCancel and the like, all through its
// AfterFunc) are kept in a list of their own and leave nothing behind
// once stopped.
//
// Why not context.WithCancel(context.Background()): a cancelCtx keeps its
// children in a map, and a Go map never shrinks. A drain context lives as
// long as the process, so one that once held 20,000 idle streams keeps
// their buckets (about 1 MB) for good after they ended.
package drain

import (
	"context"
	"sync"
	"time"
)

// Context is a drain context: done once its cancel function is called,
// never before; no deadline and no values. Registrations cost one list
// node each (and context.AfterFunc's own), freed when they are stopped
// or run. Safe for concurrent use.
type Context struct {
	done chan struct{} // closed by cancel

	mu   sync.Mutex
	err  error // guarded by mu: context.Canceled once cancelled
	head *hook // guarded by mu: the registrations, newest first
	n    int   // guarded by mu: len of the list
}

// hook is one registration, a node of Context's list.
type hook struct {
	c          *Context
	f          func()
	prev, next *hook // guarded by c.mu
	linked     bool  // guarded by c.mu: in the list
}

// New returns a drain context and the function that ends it (idempotent;
// every registration runs, each on a goroutine of its own).
func New() (*Context, context.CancelFunc) {
	c := &Context{done: make(chan struct{})}
	return c, c.cancel
}

func (c *Context) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *Context) Done() <-chan struct{}       { return c.done }
func (c *Context) Value(any) any               { return nil }

func (c *Context) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// String names the context for context's own diagnostics.
func (c *Context) String() string { return "drain.Context" }

// Len is the number of registrations in place: those neither stopped nor
// run.
func (c *Context) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// AfterFunc arranges for f to run on its own goroutine once c is
// cancelled (at once if it already is), unless stop is called first;
// stop reports whether it prevented f from running. It is the hook
// context.AfterFunc and context.WithCancel use for a parent that has one
// (context's afterFuncer), so that registrations through them land here
// too.
func (c *Context) AfterFunc(f func()) (stop func() bool) {
	h := &hook{c: c, f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return h.stop
	}
	h.next = c.head
	if h.next != nil {
		h.next.prev = h
	}
	c.head, h.linked = h, true
	c.n++
	c.mu.Unlock()
	return h.stop
}

// AfterFunc is context.AfterFunc that, on a drain Context, registers f
// directly (a list node, no more), without the child context
// context.AfterFunc makes. Use it where a registration is made per
// stream.
func AfterFunc(ctx context.Context, f func()) (stop func() bool) {
	if c, ok := ctx.(*Context); ok {
		return c.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}

// stop unlinks h; false when it was no longer linked (run, or stopped).
func (h *hook) stop() bool {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !h.linked {
		return false
	}
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		c.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	}
	h.prev, h.next, h.linked = nil, nil, false
	c.n--
	return true
}

func (c *Context) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	close(c.done)
	var run []func()
	for h := c.head; h != nil; {
		next := h.next
		run = append(run, h.f)
		h.prev, h.next, h.linked = nil, nil, false
		h = next
	}
	c.head, c.n = nil, 0
	c.mu.Unlock()
	for _, f := range run {
		go f()
	}
}

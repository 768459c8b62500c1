package router

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// The route timeout runs from the end of the downstream request, as
// Envoy's does ("the timeout begins when the downstream request is
// complete"): a request without a body is complete when its headers are
// (the stream's Start); one with a body when the body's end is read, which
// bodyEnd watches. Until then the exchange has no route deadline (a slow
// upload is bounded by the connection manager's timeouts, not the
// route's); from then on the try's context is cancelled when the timeout
// passes, which ends the exchange wherever it is, and the router answers
// 504 as for any route timeout. A streaming request that never ends its
// body is never bounded by the route timeout, as in Envoy.

// bodyEnd wraps the request body (after the mirrors' tee, before the
// retry buffer, so that its end is the downstream's, seen once) and starts
// the route timeout when the body ends. Reads may come from the upstream's
// body goroutine while the router's goroutine reads deadline.
type bodyEnd struct {
	src     io.Reader
	timeout time.Duration
	ctx     context.Context    // the tries' context
	cancel  context.CancelFunc // ends ctx

	end   atomic.Int64 // the route deadline in Unix nanoseconds once the body ended; 0 before
	mu    sync.Mutex
	timer *time.Timer // guarded by mu; stopped by stop
	done  bool        // guarded by mu: stop ran, no timer may start
}

func (b *bodyEnd) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.ended()
	}
	return n, err
}

// TryRead implements l7.TryReader for the codecs that send what has
// arrived with the headers.
func (b *bodyEnd) TryRead(p []byte) (int, error) {
	n, err := l7.TryRead(b.src, p)
	if err == io.EOF {
		b.ended()
	}
	return n, err
}

// Close closes the source when it is an io.Closer.
func (b *bodyEnd) Close() error {
	if c, ok := b.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// ended starts the route timeout, once.
func (b *bodyEnd) ended() {
	d := time.Now().Add(b.timeout)
	if !b.end.CompareAndSwap(0, d.UnixNano()) {
		return
	}
	b.mu.Lock()
	if !b.done {
		b.timer = time.AfterFunc(b.timeout, b.cancel)
	}
	b.mu.Unlock()
}

// deadline is the route deadline, zero while the body has not ended.
func (b *bodyEnd) deadline() time.Time {
	if ns := b.end.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// stop releases the timer and the context once the request is done.
func (b *bodyEnd) stop() {
	b.mu.Lock()
	b.done = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.cancel()
}

package router

import (
	"errors"
	"io"
	"sync"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// replayBody records a request body as tries send it, up to a limit, so
// that a retry can send it again. Each try reads through its own view; a
// retry starts a new view and makes the older ones stale, so a body pump
// of an abandoned try that is still running (full-duplex streams go on
// after the response headers) gets errStaleTry instead of stealing bytes:
// whatever it read from the source is recorded for the new try. Once more
// than the limit has gone out the body stops being recorded and the
// request can no longer be retried.
type replayBody struct {
	srcMu sync.Mutex // held across a source read: one reader of src at a time

	mu       sync.Mutex // guards the fields below
	src      io.Reader
	buf      []byte
	limit    int
	overflow bool  // more than limit was read: nothing is replayable
	srcDone  error // the error (io.EOF) the source ended with
	gen      int   // the generation of the live view
}

var errStaleTry = errors.New("router: request body read by an abandoned try")

func newReplayBody(src io.Reader, limit int) *replayBody {
	return &replayBody{src: src, limit: limit}
}

// view is one try's reader of the body.
type view struct {
	b      *replayBody
	gen    int
	pos    int  // next byte of b.buf to send
	direct bool // the body overflowed while this view was live: read src directly
}

// first returns the first try's view.
func (b *replayBody) first() io.Reader { return &view{b: b} }

// replayable reports whether a retry could send the whole body again.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

// rewind makes every earlier view stale and returns a view that starts
// from the beginning; nil when the body outgrew the limit.
func (b *replayBody) rewind() io.Reader {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return nil
	}
	b.gen++
	return &view{b: b, gen: b.gen}
}

func (v *view) Read(p []byte) (int, error) {
	b := v.b
	if n, err, done := v.fromBuffer(p); done {
		return n, err
	}
	b.srcMu.Lock()
	defer b.srcMu.Unlock()
	// Another view may have read from the source while we waited.
	if n, err, done := v.fromBuffer(p); done {
		return n, err
	}
	n, err := b.src.Read(p)
	return v.record(p, n, err)
}

// TryRead implements l7.TryReader: Read without waiting for the source
// (nothing is ready while another view reads it).
func (v *view) TryRead(p []byte) (int, error) {
	b := v.b
	if n, err, done := v.fromBuffer(p); done {
		return n, err
	}
	if !b.srcMu.TryLock() {
		return 0, nil
	}
	defer b.srcMu.Unlock()
	if n, err, done := v.fromBuffer(p); done {
		return n, err
	}
	n, err := l7.TryRead(b.src, p)
	if n == 0 && err == nil {
		return 0, nil
	}
	return v.record(p, n, err)
}

// record keeps what a read of the source returned (p[:n], err) for
// retries and reports it to v; srcMu held.
func (v *view) record(p []byte, n int, err error) (int, error) {
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > 0 {
		switch {
		case b.overflow:
		case len(b.buf)+n > b.limit:
			b.overflow = true
			b.buf = nil
			v.direct = true
		default:
			b.buf = append(b.buf, p[:n]...)
			v.pos = len(b.buf)
		}
	}
	if err != nil {
		b.srcDone = err
	}
	if v.gen != b.gen {
		return 0, errStaleTry
	}
	return n, err
}

// fromBuffer serves a read from the recorded bytes when it can.
func (v *view) fromBuffer(p []byte) (n int, err error, done bool) {
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case v.gen != b.gen:
		return 0, errStaleTry, true
	case !v.direct && b.overflow:
		// Bytes this view never sent went out through a stale view and were
		// not recorded: the body cannot be completed.
		return 0, errStaleTry, true
	case !v.direct && v.pos < len(b.buf):
		n = copy(p, b.buf[v.pos:])
		v.pos += n
		return n, nil, true
	case b.srcDone != nil:
		return 0, b.srcDone, true
	}
	return 0, nil, false
}

// discard closes a response that will not be used, so its stream is reset
// and its connection released (or drains a little when it cannot be
// closed).
func discard(resp *l7.Response) {
	if resp.Body == nil {
		return
	}
	if c, ok := resp.Body.(io.Closer); ok {
		c.Close()
		return
	}
	io.CopyN(io.Discard, resp.Body, 64<<10)
}

// Package relay copies bytes both ways between two stream connections: the
// L4 path of the waypoint (an inbound HBONE stream and an upstream HBONE
// stream or TCP connection).
//
// Semantics, per direction: bytes read from one side are written to the
// other with back-pressure (a slow reader stops the copy, never a growing
// buffer); when a side reaches EOF the other side's write half is closed
// (half-close), so a client that shuts its write side still receives the
// whole response. An error in either direction aborts both sides, so a
// reset upstream becomes a reset downstream rather than a truncated success.
// When no byte moves either way for the idle timeout, both sides are aborted.
package relay

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one side of a relay: a byte stream whose write half can be closed
// on its own.
type Conn interface {
	io.Reader
	io.Writer
	// CloseWrite ends the write half (TCP FIN, HTTP/2 END_STREAM) while
	// reads go on.
	CloseWrite() error
	// Close releases the connection cleanly once both halves are done.
	Close() error
}

// Aborter is implemented by a Conn that can end abnormally (TCP RST,
// HTTP/2 RST_STREAM) rather than with a clean close. Without it, Close is
// used for aborts too.
type Aborter interface {
	Abort()
}

// ReadWaiter is implemented by a Conn that can wait for input without a
// buffer: WaitRead returns once a Read would not block (data, end of
// stream or an error is ready). A direction whose source implements it
// takes a copy buffer from the pool only while bytes move, so an idle
// relay holds no buffer (10,000 idle tunnels would otherwise pin 640 MiB).
// Spurious returns are allowed; Read then blocks as usual. An error it
// returns ends the direction as a read error would (a socket's pending
// error is consumed by whoever sees it first).
type ReadWaiter interface {
	WaitRead() error
}

// BufferSize is the size of each direction's copy buffer.
const BufferSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Options tune one relay. The zero value means no idle timeout.
type Options struct {
	// IdleTimeout aborts both sides when no byte has moved in either
	// direction for this long. Zero disables it (Envoy's tcp_proxy default
	// is one hour; the caller passes the configured value).
	IdleTimeout time.Duration
	// MaxDuration aborts both sides once the relay has run this long
	// (tcp_proxy's max_downstream_connection_duration). Zero: no limit.
	MaxDuration time.Duration
}

// ErrIdleTimeout is the Result error when the idle timeout fired.
var ErrIdleTimeout = errors.New("relay: idle timeout")

// ErrMaxDuration is the Result error when MaxDuration passed.
var ErrMaxDuration = errors.New("relay: max connection duration reached")

// Result reports what one relay moved and how it ended.
type Result struct {
	// DownstreamToUpstream counts bytes read from the downstream side and
	// written upstream; UpstreamToDownstream the reverse.
	DownstreamToUpstream int64
	UpstreamToDownstream int64
	// Err is nil when both directions ended with EOF; otherwise the first
	// error seen (ErrIdleTimeout for an idle stream).
	Err error
}

// Counters, when passed to Run, are updated as bytes move, so that a
// stream's progress can be read while it is open. Safe for concurrent reads.
type Counters struct {
	DownstreamToUpstream atomic.Int64
	UpstreamToDownstream atomic.Int64
}

// Run relays between down and up until both directions end, then closes
// both sides (aborting them on error). It runs one direction on the calling
// goroutine and the other on a goroutine it owns and waits for; nothing it
// starts outlives it. counters may be nil.
func Run(down, up Conn, opts Options, counters *Counters) Result {
	r := newRun(down, up, opts, counters)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.copy(up, down, &r.counters.DownstreamToUpstream)
	}()
	r.copy(down, up, &r.counters.UpstreamToDownstream)
	<-done
	return r.end()
}

type run struct {
	down, up Conn
	counters *Counters
	// activity counts copied chunks; the idle timer compares it between
	// firings instead of reading the clock per chunk.
	activity  atomic.Uint64
	lastSeen  uint64 // touched only by the idle timer's callback
	idle      *time.Timer
	maxLife   *time.Timer // MaxDuration's; nil without one
	finished  atomic.Bool
	err       atomic.Pointer[errBox]
	abortOnce sync.Once
}

type errBox struct{ err error }

func newRun(down, up Conn, opts Options, counters *Counters) *run {
	if counters == nil {
		counters = new(Counters)
	}
	r := &run{down: down, up: up, counters: counters}
	if opts.IdleTimeout > 0 {
		// Armed after assignment, so the callback always sees r.idle.
		r.idle = time.AfterFunc(time.Duration(1<<62), func() { r.checkIdle(opts.IdleTimeout) })
		r.idle.Reset(opts.IdleTimeout)
	}
	if opts.MaxDuration > 0 {
		r.maxLife = time.AfterFunc(opts.MaxDuration, func() { r.fail(ErrMaxDuration) })
	}
	return r
}

// end runs once both directions have ended: it closes both sides, or
// aborts them after an error, and says what moved.
func (r *run) end() Result {
	r.finished.Store(true)
	if r.idle != nil {
		r.idle.Stop()
	}
	if r.maxLife != nil {
		r.maxLife.Stop()
	}
	res := Result{
		DownstreamToUpstream: r.counters.DownstreamToUpstream.Load(),
		UpstreamToDownstream: r.counters.UpstreamToDownstream.Load(),
	}
	if e := r.err.Load(); e != nil {
		res.Err = e.err
		abort(r.down)
		abort(r.up)
	} else {
		r.down.Close()
		r.up.Close()
	}
	return res
}

// copy moves src to dst until EOF or error, blocking in src's Read.
func (r *run) copy(dst, src Conn, n *atomic.Int64) {
	waiter, _ := src.(ReadWaiter)
	var bp *[]byte
	defer func() {
		if bp != nil {
			bufPool.Put(bp)
		}
	}()
	full := false // the last read filled the buffer: more is likely waiting
	for {
		if waiter != nil && !full {
			if bp != nil {
				bufPool.Put(bp)
				bp = nil
			}
			if err := waiter.WaitRead(); err != nil {
				r.fail(err)
				return
			}
		}
		if bp == nil {
			bp = bufPool.Get().(*[]byte)
		}
		nr, rerr := src.Read(*bp)
		full = nr == len(*bp)
		if r.move(dst, (*bp)[:nr], rerr, n) {
			return
		}
	}
}

// move writes what one read returned to dst and handles the read's end:
// on EOF it half-closes dst; on error it records the error and aborts both
// sides so the other direction ends too. It reports whether the direction
// has ended.
func (r *run) move(dst Conn, b []byte, rerr error, n *atomic.Int64) (ended bool) {
	if len(b) > 0 {
		r.activity.Add(1)
		nw, werr := dst.Write(b)
		if r.wrote(nw, len(b), werr, n) {
			return true
		}
	}
	return r.readEnd(dst, rerr)
}

// moveVec is move for the buffers of bufs, size bytes in all, written to
// dst by its WriteVec (vw).
func (r *run) moveVec(dst Conn, vw VecWriter, bufs [][]byte, size int, rerr error, n *atomic.Int64) (ended bool) {
	if size > 0 {
		r.activity.Add(1)
		nw, werr := vw.WriteVec(bufs)
		if r.wrote(nw, size, werr, n) {
			return true
		}
	}
	return r.readEnd(dst, rerr)
}

// wrote counts nw bytes written of want and reports whether the write
// failed (the relay is then failed).
func (r *run) wrote(nw, want int, werr error, n *atomic.Int64) (failed bool) {
	n.Add(int64(nw))
	if werr == nil && nw != want {
		werr = io.ErrShortWrite
	}
	if werr != nil {
		r.fail(werr)
		return true
	}
	return false
}

// readEnd handles a read's end for move: EOF half-closes dst, an error
// fails the relay. It reports whether the direction has ended.
func (r *run) readEnd(dst Conn, rerr error) (ended bool) {
	switch {
	case rerr == io.EOF:
		if err := dst.CloseWrite(); err != nil {
			r.fail(err)
		}
		return true
	case rerr != nil:
		r.fail(rerr)
		return true
	}
	return false
}

func (r *run) fail(err error) {
	r.err.CompareAndSwap(nil, &errBox{err})
	r.abortOnce.Do(func() {
		abort(r.down)
		abort(r.up)
	})
}

func (r *run) checkIdle(timeout time.Duration) {
	if r.finished.Load() {
		return
	}
	now := r.activity.Load()
	if now == r.lastSeen {
		r.fail(ErrIdleTimeout)
		return
	}
	r.lastSeen = now
	r.idle.Reset(timeout)
}

func abort(c Conn) {
	if a, ok := c.(Aborter); ok {
		a.Abort()
		return
	}
	c.Close()
}

package http2

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// stream is the state of one stream, shared by both roles.
//
// Locks: c.mu guards the send side and the stream's place in the
// connection; mu guards the receive side and the context. mu is a leaf:
// whoever holds it takes no other lock, so c.mu may be held while taking
// it.
type stream struct {
	c     *conn
	id    uint32 // 0 until a client stream's HEADERS are written
	start time.Time

	// Guarded by c.mu.
	sendWin   int64
	localEnd  bool // END_STREAM (or RST_STREAM) sent: we write no more
	remoteEnd bool // END_STREAM (or RST_STREAM) received
	closed    bool // removed from the connection
	responded bool // server: response HEADERS written
	sendErr   error

	// refs counts the holders of the pooled parts: a server stream's
	// request, a client stream as a whole. Holders: the handler or the
	// caller (until it closes the stream), the connection (until the
	// stream closes), the read loop while it works on the stream outside
	// c.mu, a client's request-body goroutine. The last one recycles.
	refs atomic.Int32
	req  *l7.Request
	resp *l7.Response
	// trailer receives the peer's trailers.
	trailer *l7.Header
	// cs is the client stream this is part of; nil on a server.
	cs *ClientStream

	// Guarded by mu.
	mu         sync.Mutex
	cond       sync.Cond
	buf        recvBuf
	recvWin    int64 // DATA the peer may still send
	unacked    int64 // consumed, not yet returned by WINDOW_UPDATE
	eof        bool  // END_STREAM received: buf holds the rest
	rerr       error // reads fail with it (reset, connection loss)
	readerGone bool  // nobody reads: DATA is dropped on arrival
	wantLen    int64 // content-length, -1 if unknown
	gotLen     int64
	ctxDone    chan struct{}
	ctxErr     error
	// notify, if set, is called (without locks, must not block) after
	// the receive side changes: DATA, END_STREAM, failure.
	notify func()
}

func (s *stream) init(c *conn, id uint32) {
	s.c, s.id = c, id
	s.cond.L = &s.mu
	s.wantLen = -1
	s.sendWin = c.peerInitWin
	s.recvWin = int64(c.cfg.InitialStreamWindow)
	if !c.settingsAcked && s.recvWin < initialWindow {
		// The peer may use the protocol's default until it sees ours.
		s.recvWin = initialWindow
	}
}

// release drops one reference; the last returns a server request, or a
// client stream, to its pool.
func (s *stream) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	switch {
	case s.cs != nil:
		s.cs.recycle()
	case s.req != nil:
		req := s.req
		s.req = nil
		putRequest(req)
	}
}

// deliver hands a DATA frame's data to the stream (read loop); what it
// does not keep is released.
func (s *stream) deliver(p payload, flen int64, end bool) error {
	c := s.c
	s.mu.Lock()
	if flen > s.recvWin {
		s.mu.Unlock()
		p.release()
		c.consumed(flen, true)
		return streamErr{s.id, ErrCodeFlowControl, "DATA beyond the stream window"}
	}
	s.recvWin -= flen
	n := int64(p.len())
	if s.wantLen >= 0 {
		s.gotLen += n
		if s.gotLen > s.wantLen || (end && s.gotLen != s.wantLen) {
			s.mu.Unlock()
			p.release()
			c.consumed(flen, true)
			return streamErr{s.id, ErrCodeProtocol, "DATA length does not match content-length"}
		}
	}
	credit := flen - n // padding is consumed on arrival
	s.unacked += credit
	switch {
	case s.readerGone || s.rerr != nil:
		credit = flen
		p.release()
	case p.chunks != nil:
		s.buf.appendChunks(p.chunks, p.n)
	case n > 0:
		s.buf.write(p.b)
	}
	s.cond.Broadcast()
	notify := s.notify
	s.mu.Unlock()
	if notify != nil && n > 0 {
		notify()
	}
	if err := c.consumed(credit, true); err != nil {
		return err
	}
	if end {
		return s.endOfStream()
	}
	return nil
}

// endOfStream records END_STREAM (read loop). The stream leaves the
// connection (if our side has ended too) before its reader sees the end,
// so that a reader at EOF finds the connection's state up to date.
func (s *stream) endOfStream() error {
	s.mu.Lock()
	if s.wantLen >= 0 && s.gotLen != s.wantLen {
		s.mu.Unlock()
		return streamErr{s.id, ErrCodeProtocol, "DATA length does not match content-length"}
	}
	s.mu.Unlock()
	s.c.remoteEnded(s)
	s.mu.Lock()
	s.eof = true
	s.cond.Broadcast()
	notify := s.notify
	s.mu.Unlock()
	if notify != nil {
		notify()
	}
	return nil
}

// remoteEnded notes END_STREAM from the peer; the stream closes if ours
// was sent too.
func (c *conn) remoteEnded(s *stream) {
	c.mu.Lock()
	s.remoteEnd = true
	if s.localEnd {
		c.closeStreamLocked(s)
	}
	c.mu.Unlock()
}

// waitRead blocks until read would not block: DATA is buffered, the
// peer ended the stream, or the stream failed. It returns nil: read
// reports the outcome.
func (s *stream) waitRead() error {
	s.mu.Lock()
	for s.buf.n == 0 && !s.eof && s.rerr == nil {
		s.cond.Wait()
	}
	s.mu.Unlock()
	return nil
}

// read is the body reader: buffered DATA, then io.EOF after END_STREAM
// (trailers are in place by then), or the stream's error.
func (s *stream) read(p []byte) (int, error) {
	s.mu.Lock()
	for s.buf.n == 0 && !s.eof && s.rerr == nil {
		s.cond.Wait()
	}
	return s.readLocked(p)
}

// tryRead is read without waiting: (0, nil) when nothing is buffered and
// the stream is still open.
func (s *stream) tryRead(p []byte) (int, error) {
	s.mu.Lock()
	if s.buf.n == 0 && !s.eof && s.rerr == nil {
		s.mu.Unlock()
		return 0, nil
	}
	return s.readLocked(p)
}

// readLocked takes what is buffered, or the stream's end; it unlocks mu.
func (s *stream) readLocked(p []byte) (int, error) {
	if s.rerr != nil {
		err := s.rerr
		s.mu.Unlock()
		return 0, err
	}
	if s.buf.n == 0 {
		s.mu.Unlock()
		return 0, io.EOF
	}
	n := s.buf.read(p)
	return n, s.consumedLocked(n)
}

// tryReadChunk is tryRead without a copy: it takes the first buffered
// chunk whole. An empty Chunk with a nil error means nothing has arrived.
func (s *stream) tryReadChunk() (Chunk, error) {
	s.mu.Lock()
	if s.rerr != nil {
		err := s.rerr
		s.mu.Unlock()
		return Chunk{}, err
	}
	if s.buf.n == 0 {
		eof := s.eof
		s.mu.Unlock()
		if eof {
			return Chunk{}, io.EOF
		}
		return Chunk{}, nil
	}
	ch := s.buf.takeFirst()
	return ch, s.consumedLocked(len(ch.b))
}

// consumedLocked counts n bytes as read: the stream's window is given
// back once half of it is due, the connection's likewise. It unlocks mu.
func (s *stream) consumedLocked(n int) error {
	var inc int64
	if !s.eof {
		s.unacked += int64(n)
		if s.unacked >= int64(s.c.cfg.InitialStreamWindow)/2 {
			inc = s.unacked
			s.unacked = 0
			s.recvWin += inc
		}
	}
	s.mu.Unlock()
	s.c.returnWindow(s.id, inc, int64(n))
	return nil
}

// setNotify installs (or, with nil, removes) the receive-side callback,
// and calls it once if input is already waiting, so that nothing that
// arrived before is missed.
func (s *stream) setNotify(fn func()) {
	s.mu.Lock()
	s.notify = fn
	ready := s.buf.n > 0 || s.eof || s.rerr != nil
	s.mu.Unlock()
	if fn != nil && ready {
		fn()
	}
}

// returnWindow gives consumed bytes back: inc to the stream's window
// (already decided) and n to the connection's, each by WINDOW_UPDATE once
// past half the window. It may write, so it runs on a stream goroutine.
func (c *conn) returnWindow(id uint32, inc, n int64) {
	c.mu.Lock()
	c.connUnacked += n
	var connInc int64
	if c.connUnacked >= int64(c.cfg.InitialConnWindow)/2 && !c.closed {
		connInc = c.connUnacked
		c.connUnacked = 0
		c.connRecvAvail += connInc
	}
	c.mu.Unlock()
	if inc == 0 && connInc == 0 {
		return
	}
	frames := 0
	if inc > 0 {
		frames++
	}
	if connInc > 0 {
		frames++
	}
	c.sendCtrl(classOther, frames, false, func(fr *xhttp2.Framer) {
		if connInc > 0 {
			fr.WriteWindowUpdate(0, uint32(connInc))
		}
		if inc > 0 {
			fr.WriteWindowUpdate(id, uint32(inc))
		}
	})
}

// stopReading drops what is buffered and what will arrive: the reader is
// gone. The connection window gets it all back.
func (s *stream) stopReading() {
	s.mu.Lock()
	s.readerGone = true
	n := s.buf.reset()
	s.mu.Unlock()
	s.c.returnWindow(0, 0, int64(n))
}

// abort fails the stream's reads with err and cancels its context. A
// stream whose DATA is all in (eof) keeps it readable unless discard.
func (s *stream) abort(err error, discard bool) {
	s.mu.Lock()
	var n int
	if s.rerr == nil && (discard || !s.eof) {
		s.rerr = err
		n = s.buf.reset()
	}
	s.cond.Broadcast()
	notify := s.notify
	s.mu.Unlock()
	if notify != nil {
		notify()
	}
	s.cancelCtx()
	if n > 0 {
		s.c.consumed(int64(n), true)
	}
	if s.cs != nil {
		s.cs.closeRequestBody()
	}
}

// sendErrLocked says why nothing more can be sent, or nil; c.mu held.
func (s *stream) sendErrLocked() error {
	switch {
	case s.sendErr != nil:
		return s.sendErr
	case s.c.closed:
		return s.c.err
	case s.localEnd:
		return ErrStreamDone
	}
	return nil
}

// reserve waits until the stream and connection windows allow sending
// some of n bytes and takes up to min(n, windows, frame size). DATA
// frames are at most maxDataFrame whatever the peer's
// SETTINGS_MAX_FRAME_SIZE: a frame fits the write buffer, streams take
// turns at that grain, and the peer's WINDOW_UPDATE rate per DATA frame
// stays within what the window-update flood limit expects (Envoy, which
// that limit comes from, sends 16 KiB frames too).
// wait=false returns 0 instead of waiting.
func (s *stream) reserve(n int, wait bool) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if err := s.sendErrLocked(); err != nil {
			return 0, err
		}
		m := int64(n)
		m = min(m, s.sendWin, c.connSendWin, int64(c.peerMaxFrame), maxDataFrame)
		if m > 0 {
			s.sendWin -= m
			c.connSendWin -= m
			return int(m), nil
		}
		if !wait {
			return 0, nil
		}
		c.flowCond.Wait()
	}
}

// unreserve returns a reservation that was not sent.
func (s *stream) unreserve(n int) {
	if n == 0 {
		return
	}
	c := s.c
	c.mu.Lock()
	s.sendWin += int64(n)
	c.connSendWin += int64(n)
	c.flowCond.Broadcast()
	c.mu.Unlock()
}

// lockSend takes the write lock for a frame of s; end marks our side
// ended (no other write of s can follow). On error the lock is released.
func (s *stream) lockSend(end bool) error {
	c := s.c
	if err := c.w.lock(); err != nil {
		c.w.unlock()
		return err
	}
	c.mu.Lock()
	err := s.sendErrLocked()
	if err == nil && end {
		s.localEnd = true
	}
	c.mu.Unlock()
	if err != nil {
		c.w.unlock()
	}
	return err
}

// unlockSend releases the write lock; after END_STREAM the stream closes
// if the peer's side ended too. It closes before the release, because the
// release may flush: once the peer can see our END_STREAM, the read loop
// must already have forgotten the stream, so that a frame the peer still
// sends on it is an error on a closed stream (a connection error for
// HEADERS), not one on a half-closed one.
func (s *stream) unlockSend(end bool) {
	c := s.c
	if end {
		c.mu.Lock()
		if s.remoteEnd {
			c.closeStreamLocked(s)
		}
		c.mu.Unlock()
	}
	c.w.unlock()
}

// writeData sends p as DATA frames, blocking on flow control; end sets
// END_STREAM on the last one (an empty frame if p is empty). While nobody
// waits for the write lock and the windows allow, the frames of one call
// are written under one hold of the lock, so they leave in one flush;
// otherwise the lock is passed on after each frame (round robin).
func (s *stream) writeData(p []byte, end bool) (int, error) {
	c := s.c
	n := 0
	for {
		m := 0
		if len(p) > n {
			var err error
			if m, err = s.reserve(len(p)-n, true); err != nil {
				return n, err
			}
		}
		last := end && n+m == len(p)
		if err := s.lockSend(last); err != nil {
			s.unreserve(m)
			return n, err
		}
		for {
			err := c.w.writeData(s.id, last, p[n:n+m])
			c.dataSent.Add(1)
			if err != nil {
				s.unlockSend(last)
				return n, err
			}
			n += m
			if n == len(p) || c.w.contended() {
				break
			}
			if m, err = s.reserve(len(p)-n, false); err != nil || m == 0 {
				break // the next reserve reports err, or waits for window
			}
			if last = end && n+m == len(p); last {
				s.markLocalEnd()
			}
		}
		s.unlockSend(last)
		if n == len(p) {
			return n, nil
		}
	}
}

// writeVec sends bufs in order as DATA frames, a frame (or more) per
// buffer, blocking on flow control, without END_STREAM. Like writeData
// it writes all the frames the windows allow under one hold of the write
// lock while nobody waits for it, so that buffers given together leave in
// one flush (one write to the transport) rather than one each.
func (s *stream) writeVec(bufs [][]byte) (int, error) {
	c := s.c
	total := 0
	i, off := 0, 0 // the next byte to send: bufs[i][off]
	for i < len(bufs) && len(bufs[i]) == 0 {
		i++
	}
	for i < len(bufs) {
		m, err := s.reserve(len(bufs[i])-off, true)
		if err != nil {
			return total, err
		}
		if err := s.lockSend(false); err != nil {
			s.unreserve(m)
			return total, err
		}
		for {
			err := c.w.writeData(s.id, false, bufs[i][off:off+m])
			c.dataSent.Add(1)
			if err != nil {
				s.unlockSend(false)
				return total, err
			}
			total += m
			if off += m; off == len(bufs[i]) {
				for i, off = i+1, 0; i < len(bufs) && len(bufs[i]) == 0; i++ {
				}
			}
			if i == len(bufs) || c.w.contended() {
				break
			}
			if m, err = s.reserve(len(bufs[i])-off, false); err != nil || m == 0 {
				break // the next reserve reports err, or waits for window
			}
		}
		s.unlockSend(false)
	}
	return total, nil
}

// markLocalEnd records that END_STREAM is being sent (write lock held),
// as lockSend does for a frame that ends the stream.
func (s *stream) markLocalEnd() {
	s.c.mu.Lock()
	s.localEnd = true
	s.c.mu.Unlock()
}

// writeBlockLocked writes a header block as HEADERS and CONTINUATION
// frames; write lock held.
func (s *stream) writeBlockLocked(b []byte, end bool) error {
	c := s.c
	c.mu.Lock()
	max := int(c.peerMaxFrame)
	c.mu.Unlock()
	first := b
	if len(first) > max {
		first = b[:max]
	}
	b = b[len(first):]
	err := c.w.fr.WriteHeaders(xhttp2.HeadersFrameParam{
		StreamID: s.id, BlockFragment: first, EndStream: end, EndHeaders: len(b) == 0,
	})
	for len(b) > 0 && err == nil {
		frag := b
		if len(frag) > max {
			frag = b[:max]
		}
		b = b[len(frag):]
		err = c.w.fr.WriteContinuation(s.id, len(b) == 0, frag)
	}
	return err
}

// writeTrailers sends a trailer block with END_STREAM. Trailers whose
// names cannot be sent (checkNames) reset the stream (INTERNAL_ERROR):
// the message has started and cannot be ended well.
func (s *stream) writeTrailers(h *l7.Header) error {
	upper, err := checkNames(h, "trailer")
	if err != nil {
		s.c.resetStream(s, ErrCodeInternal, err.Error(), false)
		return err
	}
	if err := s.lockSend(true); err != nil {
		return err
	}
	err = s.writeBlockLocked(s.c.w.enc.trailers(h, upper), true)
	s.unlockSend(true)
	return err
}

// streamContext is a stream's context.Context: cancelled on reset,
// connection loss, or when the stream ends. Values come from parent;
// there is no deadline. Done's channel is made on first use.
type streamContext struct {
	s      *stream
	parent context.Context
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (x *streamContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *streamContext) Value(key any) any           { return x.parent.Value(key) }

func (x *streamContext) Done() <-chan struct{} {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctxDone == nil {
		if s.ctxErr != nil {
			return closedChan
		}
		s.ctxDone = make(chan struct{})
	}
	return s.ctxDone
}

func (x *streamContext) Err() error {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctxErr
}

func (s *stream) cancelCtx() {
	s.mu.Lock()
	if s.ctxErr == nil {
		s.ctxErr = context.Canceled
		if s.ctxDone != nil {
			close(s.ctxDone)
		}
	}
	s.mu.Unlock()
}

package http2

import (
	"context"
	"io"
	"sync"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ServerStream is one stream of a server connection, handed to the
// Handler. Its methods are for the handler's goroutine (and goroutines it
// owns): Request's Body may be read on one goroutine while the response
// is written on another, but two goroutines must not write at once.
type ServerStream struct {
	s    stream
	ctx  streamContext
	body requestBody
	// Handler goroutine only.
	final    bool // final (non-1xx) response headers written
	detached bool // Detach was called: the handler's return finishes nothing
}

type requestBody struct{ s *stream }

func (b *requestBody) Read(p []byte) (int, error) { return b.s.read(p) }

// TryRead implements l7.TryReader.
func (b *requestBody) TryRead(p []byte) (int, error) { return b.s.tryRead(p) }

// WaitRead blocks until a Read of the request body would not block: data
// is buffered, the body ended, or the stream failed. A relay waits with it
// before taking a copy buffer, so an idle stream holds none.
func (st *ServerStream) WaitRead() error { return st.s.waitRead() }

// TryRead reads the request body without waiting: what is buffered, or
// the body's end (io.EOF) or failure; (0, nil) when nothing has arrived.
func (st *ServerStream) TryRead(p []byte) (int, error) { return st.s.tryRead(p) }

// TryReadChunk is TryRead without a copy: it hands over the next chunk of
// the request body as it arrived, which the caller must Release; an empty
// Chunk and nil when nothing has arrived, io.EOF at the body's end.
func (st *ServerStream) TryReadChunk() (Chunk, error) { return st.s.tryReadChunk() }

// SetReadNotify installs fn, called each time request DATA arrives, the
// body ends or the stream fails (and at once if input is waiting), so that
// a reader can wait without a goroutine and read with TryRead. fn runs on
// the connection's read loop or on whoever fails the stream, with no lock
// held; it must not block. nil removes it.
func (st *ServerStream) SetReadNotify(fn func()) { st.s.setNotify(fn) }

// Detach lets the handler return while the stream goes on, owned by
// whoever the handler hands it to (an event-driven relay, so that an idle
// tunnel costs no goroutine). The returned finish must be called exactly
// once, when that owner is done: it does what the handler's return would
// have done (see Handler). ServeConn waits for it as for a handler. Call
// Detach on the handler's goroutine, before it returns.
func (st *ServerStream) Detach() (finish func()) {
	st.detached = true
	c := st.s.c
	c.wg.Add(1) // the handler's own hold keeps the count above zero
	var once sync.Once
	return func() {
		once.Do(func() {
			st.finish()
			c.wg.Done()
		})
	}
}

// ID returns the stream id.
func (st *ServerStream) ID() uint32 { return st.s.id }

// Failed reports whether the stream's reads fail for good (RST_STREAM,
// the connection lost, or a reset of ours) with nothing left to read;
// false while bytes or the request body's end may still be read. It
// neither blocks nor reads; safe for concurrent use, and from a read
// notification (SetReadNotify).
func (st *ServerStream) Failed() bool {
	s := &st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rerr != nil
}

// Request returns the request. It and its byte slices belong to the
// stream: valid until the handler returns, then reused. Its Body (nil when
// the request has none) streams the DATA with flow control: the window is
// given back as it is read. Trailer is filled before Body returns io.EOF.
func (st *ServerStream) Request() *l7.Request { return st.s.req }

// Context is cancelled on RST_STREAM, connection loss, or when the stream
// ends (both sides done, or the handler returned). It carries the values
// of ServeConn's context and has no deadline.
func (st *ServerStream) Context() context.Context { return &st.ctx }

// WriteHeaders sends the response headers; endStream ends the response
// there. A 1xx status may precede the final one. The block is encoded on
// the connection's writer: WriteHeaders does not wait for the peer's flow
// control windows but may wait for the connection to be writable.
func (st *ServerStream) WriteHeaders(resp *l7.Response, endStream bool) error {
	if st.final {
		return ErrHeadersSent
	}
	informational := resp.Status < 200
	if informational && endStream {
		endStream = false
	}
	upper, err := checkNames(&resp.Header, "response header")
	if err != nil {
		return err
	}
	s := &st.s
	if err := s.lockSend(endStream); err != nil {
		return err
	}
	err = s.writeBlockLocked(s.c.w.enc.response(resp, upper), endStream)
	if !informational {
		s.c.mu.Lock()
		s.responded = true
		s.c.mu.Unlock()
		st.final = true
	}
	s.unlockSend(endStream)
	return err
}

// Write sends p as DATA, blocking until the peer's stream and connection
// windows let it all go (or the stream ends: the error says why).
func (st *ServerStream) Write(p []byte) (int, error) {
	if !st.final {
		return 0, ErrHeadersNotSent
	}
	return st.s.writeData(p, false)
}

// WriteVec is Write for the buffers of bufs in turn: the frames of all of
// them go out together (one write to the transport) when the windows
// allow and no other stream waits to write. It returns the bytes sent.
func (st *ServerStream) WriteVec(bufs [][]byte) (int, error) {
	if !st.final {
		return 0, ErrHeadersNotSent
	}
	return st.s.writeVec(bufs)
}

// WriteTrailers sends trailers and ends the stream.
func (st *ServerStream) WriteTrailers(h *l7.Header) error {
	if !st.final {
		return ErrHeadersNotSent
	}
	return st.s.writeTrailers(h)
}

// CloseWrite ends the response with an empty DATA frame carrying
// END_STREAM; the request may still be read (half-close).
func (st *ServerStream) CloseWrite() error {
	if !st.final {
		return ErrHeadersNotSent
	}
	_, err := st.s.writeData(nil, true)
	return err
}

// CloseRead stops reading the request: reads, blocked or later, return
// ErrStreamDone, and DATA still arriving is dropped with its flow-control
// window given back. Our side of the stream is untouched: it may still be
// written and ended cleanly (when the handler returns with the client
// still sending, the stream is then closed with RST_STREAM(NO_ERROR), as
// RFC 9113 §8.1 allows).
func (st *ServerStream) CloseRead() {
	s := &st.s
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = ErrStreamDone
	}
	s.readerGone = true
	n := s.buf.reset()
	s.cond.Broadcast()
	s.mu.Unlock()
	s.c.returnWindow(0, 0, int64(n))
}

// CancelContext cancels the stream's Context without ending the stream:
// work done under it stops (an upstream request), while the handler may
// still answer (a local reply after a timeout of its own). Safe to call
// from any goroutine.
func (st *ServerStream) CancelContext() { st.s.cancelCtx() }

// Reset ends the stream with RST_STREAM(code): reads and writes fail and
// the context is cancelled.
func (st *ServerStream) Reset(code ErrCode) {
	st.s.c.resetStream(&st.s, code, "reset by the handler", false)
}

// ResetAsync is Reset for a caller that must not wait for the transport
// (a timer's goroutine, with a peer that does not read): the RST_STREAM is
// written by a goroutine the connection owns. Safe from any goroutine.
func (st *ServerStream) ResetAsync(code ErrCode) {
	st.s.c.resetStream(&st.s, code, "reset by the handler's timer", true)
}

// WriteResponse writes resp whole: headers, resp.Body copied as DATA
// (through a pooled 16 KiB buffer), then resp.Trailer if it has fields
// once Body is done, else END_STREAM on the last frame. What of the body
// is at hand goes out with the headers in one flush: a body of known
// length that fits the buffer, or, from an l7.TryReader (a response
// relayed from another HTTP/2 stream), what has arrived, with the
// trailers too when it has all arrived. If Body implements io.Closer it is
// not closed.
func (st *ServerStream) WriteResponse(resp *l7.Response) error {
	if resp.Body == nil {
		hasTrailers := resp.Trailer.Len() > 0
		if err := st.WriteHeaders(resp, !hasTrailers); err != nil {
			return err
		}
		if hasTrailers {
			return st.WriteTrailers(&resp.Trailer)
		}
		return nil
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var (
		n        int
		complete bool // the body has ended within buf[:n]
		err      error
	)
	switch {
	case resp.Status < 200:
	case resp.ContentLength >= 0 && resp.ContentLength < int64(len(buf)):
		n, err = io.ReadFull(resp.Body, buf[:resp.ContentLength+1])
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = nil
		}
		complete = int64(n) == resp.ContentLength
	default:
		n, err = l7.TryReadFull(resp.Body, buf)
		if err == io.EOF {
			complete, err = true, nil
		}
	}
	if err != nil {
		st.Reset(ErrCodeInternal)
		return err
	}
	if n > 0 || complete {
		if err := st.writeFirst(resp, buf[:n], complete); err != nil || complete {
			return err
		}
	} else if err := st.WriteHeaders(resp, false); err != nil {
		return err
	}
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			st.Reset(ErrCodeInternal)
			return err
		}
	}
	if resp.Trailer.Len() > 0 {
		return st.WriteTrailers(&resp.Trailer)
	}
	return st.CloseWrite()
}

// writeFirst sends the final headers and the first bytes of the body
// under one hold of the write lock, when the windows allow it without
// waiting; complete says the body ends there, and then the trailers (or
// END_STREAM) go in the same hold.
func (st *ServerStream) writeFirst(resp *l7.Response, body []byte, complete bool) error {
	s := &st.s
	trailers := complete && resp.Trailer.Len() > 0
	end := complete && !trailers // END_STREAM on the headers or the DATA
	upper, err := checkNames(&resp.Header, "response header")
	if err != nil {
		return err
	}
	var upperT bool
	if trailers {
		if upperT, err = checkNames(&resp.Trailer, "trailer"); err != nil {
			return err
		}
	}
	m := 0
	if len(body) > 0 {
		var err error
		if m, err = s.reserve(len(body), false); err != nil {
			return err
		}
		if m < len(body) {
			s.unreserve(m)
			if err := st.WriteHeaders(resp, false); err != nil {
				return err
			}
			if _, err := s.writeData(body, end); err != nil || !trailers {
				return err
			}
			return st.WriteTrailers(&resp.Trailer)
		}
	}
	if err := s.lockSend(end); err != nil {
		s.unreserve(m)
		return err
	}
	c := s.c
	err = s.writeBlockLocked(c.w.enc.response(resp, upper), end && len(body) == 0)
	if err == nil && len(body) > 0 {
		err = c.w.writeData(s.id, end, body)
		c.dataSent.Add(1)
	}
	if err == nil && trailers {
		s.markLocalEnd()
		err = s.writeBlockLocked(c.w.enc.trailers(&resp.Trailer, upperT), true)
	}
	c.mu.Lock()
	s.responded = true
	c.mu.Unlock()
	st.final = true
	s.unlockSend(complete)
	return err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// CloseConn closes the stream's whole connection because of what its
// streams did: GOAWAY (ENHANCE_YOUR_CALM) with reason, then every stream
// of the connection fails and ServeConn returns a *ConnError whose
// Defence is DefenceRefusedStreams. It returns at once; the connection
// closes on a goroutine the connection owns. Safe to call from any
// goroutine, more than once.
func (st *ServerStream) CloseConn(reason string) {
	c := st.s.c
	c.mu.Lock()
	first := c.closedBy == DefenceNone && !c.closed
	if first {
		c.closedBy, c.closedReason = DefenceRefusedStreams, reason
	}
	c.mu.Unlock()
	if first {
		c.goTracked(func() { c.fail(ErrCodeEnhanceYourCalm, reason) })
	}
}

// Buffered returns the DATA received on the stream and not yet read (the
// overload manager's reset_high_memory_stream reads it).
func (st *ServerStream) Buffered() int {
	s := &st.s
	s.mu.Lock()
	n := s.buf.n
	s.mu.Unlock()
	return n
}

package http2

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Handler serves the streams of a server connection.
type Handler interface {
	// ServeHTTP2 is called on a new goroutine for each stream, owned by
	// ServeConn, which waits for it. It must return once the stream's
	// Context is done. When it returns, the stream is finished for it:
	// a response not ended is ended (empty DATA with END_STREAM), a
	// stream without response headers is reset (INTERNAL_ERROR), and a
	// request still arriving is cut with RST_STREAM(NO_ERROR).
	ServeHTTP2(st *ServerStream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(st *ServerStream)

// ServeHTTP2 calls f(st).
func (f HandlerFunc) ServeHTTP2(st *ServerStream) { f(st) }

// serverState is the server part of a conn; guarded by c.mu unless noted.
type serverState struct {
	handler Handler         // read-only
	baseCtx context.Context // read-only: values for stream contexts
	// handlers is the number of handler goroutines running; at most
	// MaxConcurrentStreams, the rest wait in pending (their streams may
	// have been reset while handlers of earlier ones still run).
	handlers int
	pending  []*ServerStream
	// idle are the hand-off channels of handler goroutines waiting for a
	// next stream (most recent last): reusing one saves starting a
	// goroutine and growing its stack again for every stream.
	idle []chan *ServerStream
	// Rapid-reset accounting.
	closed    int
	premature int
	// drainExpired is set when DrainTimeout cut the shutdown short.
	drainExpired bool
	// drainCtx is ServeConn's context (read-only): its cause says whether
	// a graceful shutdown begins with a notice (ErrShutdownNotice).
	drainCtx context.Context
	// noticeTimer ends the ShutdownNotice period (final GOAWAY).
	noticeTimer *time.Timer
	// RequestHeadersTimeout: hdrPending is the stream id of the request
	// block the timer runs for (0: none), hdrDeadline when it passes,
	// hdrExpired the id of a block the timer answered (dropped when it
	// completes).
	hdrTimer    *time.Timer
	hdrPending  uint32
	hdrExpired  uint32
	hdrDeadline time.Time
}

func (s *serverState) tooManyPrematureResetsLocked(cfg *Config) bool {
	if s.premature == 0 {
		return false
	}
	limit := cfg.PrematureResetStreamCount
	if s.closed < limit {
		return s.premature*2 >= limit
	}
	return s.premature*2 >= s.closed
}

// errDrainTimeout is ServeConn's result when DrainTimeout ended a graceful
// shutdown with streams still open.
var errDrainTimeout = errors.New("http2: drain timeout: streams still open were closed")

// ErrShutdownNotice, as the cause of the end of ServeConn's context
// (context.WithCancelCause), makes the graceful shutdown begin with a
// notice when Config.ShutdownNotice is set.
var ErrShutdownNotice = errors.New("http2: graceful shutdown with a notice")

// lastStreamIDNotice is the last stream id of a shutdown notice's GOAWAY
// (RFC 9113 §6.8: 2^31-1, every stream may still come).
const lastStreamIDNotice = 1<<31 - 1

// ServeConn serves HTTP/2 with prior knowledge on conn, a byte stream
// from the caller (a TCP connection, a TLS connection after ALPN h2, an
// HBONE tunnel): it reads the client preface, exchanges SETTINGS and calls
// h for every stream. It runs on the caller's goroutine and returns when
// the connection has ended and every handler it started has returned;
// conn is closed by then. The result is nil when the peer closed or a
// graceful shutdown completed, else the error that ended the connection.
//
// Cancelling ctx is a graceful shutdown: GOAWAY with the last stream id,
// streams in flight finish, then the connection closes; after
// cfg.DrainTimeout the remaining streams are cut. With cfg.ShutdownNotice
// and ErrShutdownNotice as ctx's cause, the final GOAWAY follows a notice
// (see Config). Closing conn is the hard stop: everything ends at once.
// Stream contexts carry ctx's values.
func ServeConn(ctx context.Context, conn io.ReadWriteCloser, cfg Config, h Handler) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		conn.Close()
		return err
	}
	c := newConn(conn, cfg, true)
	c.srv.handler = h
	c.srv.baseCtx = context.WithoutCancel(ctx)
	c.srv.drainCtx = ctx
	return c.serve(ctx)
}

// armHeaderTimer starts RequestHeadersTimeout for the request header
// block of stream id, which needs more frames (read loop).
func (c *conn) armHeaderTimer(id uint32) {
	d := c.cfg.RequestHeadersTimeout
	c.mu.Lock()
	c.srv.hdrPending = id
	c.srv.hdrDeadline = time.Now().Add(d)
	if c.srv.hdrTimer == nil {
		c.srv.hdrTimer = time.AfterFunc(d, c.headersExpired)
	} else {
		c.srv.hdrTimer.Reset(d)
	}
	c.mu.Unlock()
}

// headerBlockDone disarms the timer of the request block of stream id,
// which is complete (read loop); true when the timer answered the stream
// first: the request is then dropped.
func (c *conn) headerBlockDone(id uint32) (expired bool) {
	c.mu.Lock()
	if c.srv.hdrPending == id {
		c.srv.hdrPending = 0
		c.srv.hdrTimer.Stop()
	}
	if c.srv.hdrExpired == id {
		c.srv.hdrExpired, expired = 0, true
	}
	c.mu.Unlock()
	return expired
}

// headersExpired is the RequestHeadersTimeout timer: the stream whose
// header block is still incomplete is answered 408 and reset
// (RST_STREAM(NO_ERROR)), its id noted as reset so that what the peer
// still sends on it is ignored. A timer that went off for a block since
// completed (the next one's deadline not reached) does nothing: Reset
// re-armed it. OnRequestHeadersTimeout is called before the answer is
// queued.
func (c *conn) headersExpired() {
	c.mu.Lock()
	id := c.srv.hdrPending
	if id == 0 || c.closed || time.Now().Before(c.srv.hdrDeadline) {
		c.mu.Unlock()
		return
	}
	c.srv.hdrPending, c.srv.hdrExpired = 0, id
	c.noteResetLocked(id)
	c.mu.Unlock()
	if f := c.cfg.OnRequestHeadersTimeout; f != nil {
		f() // before the peer can see the answer
	}
	c.sendCtrl(classControl, 2, true, func(fr *xhttp2.Framer) {
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: block408, EndStream: true, EndHeaders: true})
		fr.WriteRSTStream(id, ErrCodeNo)
	})
}

func (c *conn) serve(ctx context.Context) error {
	hs := time.AfterFunc(c.cfg.HandshakeTimeout, c.closeTransport)
	err := c.serverHandshake()
	hs.Stop()
	if err == nil {
		c.startTimers()
		stop := afterFunc(ctx, c.startDrain)
		err = c.readFrames()
		stop()
	}
	err = c.endReadLoop(err)
	c.wg.Wait()
	return err
}

// serverHandshake sends our SETTINGS, reads the client preface and
// requires SETTINGS as the first frame.
func (c *conn) serverHandshake() error {
	if err := c.writeSettings(); err != nil {
		return err
	}
	var preface [len(xhttp2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return err
	}
	if string(preface[:]) != xhttp2.ClientPreface {
		return connErr{code: ErrCodeProtocol, reason: "invalid client preface"}
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*xhttp2.SettingsFrame)
	if !ok || sf.IsAck() {
		return connErr{code: ErrCodeProtocol, reason: "first frame from the client is not SETTINGS"}
	}
	return c.onSettings(sf)
}

// endReadLoop ends the connection after the read loop returned err and
// says what ServeConn (or the ClientConn) reports.
func (c *conn) endReadLoop(err error) error {
	var ce connErr
	switch {
	case errors.As(err, &ce):
		c.fail(ce.code, ce.reason)
		return &ConnError{Code: ce.code, Reason: ce.reason, Defence: ce.def}
	case errors.Is(err, errFlood), errors.Is(err, errCtrlFlood):
		def := DefenceOutboundFlood
		if errors.Is(err, errCtrlFlood) {
			def = DefenceOutboundControlFlood
		}
		e := &ConnError{Code: ErrCodeEnhanceYourCalm, Reason: err.Error(), Defence: def}
		c.shutdown(e)
		return e
	}
	c.mu.Lock()
	graceful, expired := c.graceful, c.srv.drainExpired
	byDef, defReason := c.closedBy, c.closedReason
	c.mu.Unlock()
	if byDef != DefenceNone {
		e := &ConnError{Code: ErrCodeEnhanceYourCalm, Reason: defReason, Defence: byDef}
		if byDef == DefenceKeepAliveTimeout {
			e.Code = ErrCodeNo
		}
		c.shutdown(e)
		return e
	}
	switch {
	case expired:
		c.shutdown(errDrainTimeout)
		return errDrainTimeout
	case graceful || errors.Is(err, io.EOF):
		c.shutdown(ErrClosed)
		return nil
	}
	if !c.server {
		err = &TransportError{Err: err}
	}
	c.shutdown(err)
	return err
}

// startDrain begins a graceful shutdown (ServeConn's ctx was cancelled):
// the notice when it is asked for (Config.ShutdownNotice), else the final
// GOAWAY.
func (c *conn) startDrain() {
	if c.cfg.ShutdownNotice > 0 && errors.Is(context.Cause(c.srv.drainCtx), ErrShutdownNotice) {
		c.mu.Lock()
		if c.closed || c.draining || c.goAwaySent || c.srv.noticeTimer != nil {
			c.mu.Unlock()
			return
		}
		// Streams are still accepted: goAwaySent stays false until the
		// final GOAWAY.
		c.srv.noticeTimer = time.AfterFunc(c.cfg.ShutdownNotice, c.finalGoAway)
		c.mu.Unlock()
		c.sendCtrl(classFinal, 1, true, func(fr *xhttp2.Framer) { fr.WriteGoAway(lastStreamIDNotice, ErrCodeNo, nil) })
		return
	}
	c.finalGoAway()
}

// finalGoAway sends the final GOAWAY with the last stream id processed:
// no new stream from then on, the connection closes once those in flight
// are done (at most DrainTimeout).
func (c *conn) finalGoAway() {
	c.mu.Lock()
	if c.closed || c.draining {
		c.mu.Unlock()
		return
	}
	c.draining = true
	c.goAwaySent = true
	last := c.maxPeerID
	c.drainTimer = time.AfterFunc(c.cfg.DrainTimeout, func() {
		c.mu.Lock()
		c.srv.drainExpired = true
		c.mu.Unlock()
		c.closeTransport()
	})
	idle := c.idleLocked()
	c.mu.Unlock()
	c.sendCtrl(classFinal, 1, true, func(fr *xhttp2.Framer) { fr.WriteGoAway(last, ErrCodeNo, nil) })
	if idle {
		c.goTracked(func() { c.closeGracefully(false) })
	}
}

// srvBeginHeaders routes a client's header block: a new request,
// trailers, or a block decoded only for HPACK's sake.
func (c *conn) srvBeginHeaders() error {
	id := c.blk.id
	if id%2 == 0 {
		return connErr{code: ErrCodeProtocol, reason: "HEADERS with an even stream id from a client"}
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		remoteEnd := s.remoteEnd
		trailers := !remoteEnd && c.blk.endStream && !c.blk.hasErr
		if trailers {
			s.refs.Add(1) // the block's, taken while s is surely alive
		}
		c.mu.Unlock()
		switch {
		case c.blk.hasErr:
			c.hdec.begin(blockDiscard, nil, nil, nil)
		case remoteEnd:
			c.blk.hasErr, c.blk.errCode, c.blk.errReason = true, ErrCodeStreamClosed, "HEADERS after END_STREAM"
			c.hdec.begin(blockDiscard, nil, nil, nil)
		case !c.blk.endStream:
			c.blk.hasErr, c.blk.errCode, c.blk.errReason = true, ErrCodeProtocol, "trailers without END_STREAM"
			c.hdec.begin(blockDiscard, nil, nil, nil)
		default:
			c.blk.s = s
			s.trailer.Reset()
			c.hdec.begin(blockTrailers, nil, nil, s.trailer)
		}
		return nil
	}
	if id <= c.maxPeerID {
		ignore := c.wasResetLocked(id)
		c.mu.Unlock()
		if !ignore {
			return connErr{code: ErrCodeStreamClosed, reason: "HEADERS on a closed stream"}
		}
		c.hdec.begin(blockDiscard, nil, nil, nil)
		return nil
	}
	c.maxPeerID = id
	c.opened++
	if c.blk.hasErr {
		c.mu.Unlock()
		c.hdec.begin(blockDiscard, nil, nil, nil)
		return nil
	}
	if c.goAwaySent {
		// Above our GOAWAY's last stream id: ignored (RFC 9113 §6.8).
		c.noteResetLocked(id)
		c.mu.Unlock()
		c.hdec.begin(blockDiscard, nil, nil, nil)
		return nil
	}
	c.mu.Unlock()
	req := getRequest()
	c.blk.req = req
	c.hdec.begin(blockRequest, req, nil, nil)
	return nil
}

// srvEndHeaders acts on a complete client header block.
func (c *conn) srvEndHeaders() error {
	b, d := &c.blk, &c.hdec
	req := b.req
	b.req = nil
	if b.hasErr {
		if req != nil {
			putRequest(req)
		}
		return streamErr{b.id, b.errCode, b.errReason}
	}
	switch d.kind {
	case blockTrailers:
		if d.over {
			return streamErr{b.id, ErrCodeProtocol, "trailers over the header list limits"}
		}
		if d.bad != "" {
			return streamErr{b.id, ErrCodeProtocol, "malformed trailers: " + d.bad}
		}
		return b.s.endOfStream()
	case blockRequest:
		if d.over {
			putRequest(req)
			return c.refuse431(b.id, b.endStream)
		}
		if d.bad != "" {
			putRequest(req)
			return streamErr{b.id, ErrCodeProtocol, "malformed request: " + d.bad}
		}
		return c.openServerStream(req, b.id, b.endStream, d.contentLength)
	}
	return nil
}

// refuse431 answers a request whose header block is over our limits with
// 431 and, if the client is still sending, RST_STREAM(NO_ERROR), as a
// server that responds before the request ends may (RFC 9113 §8.1).
func (c *conn) refuse431(id uint32, endStream bool) error {
	c.mu.Lock()
	c.noteResetLocked(id)
	c.mu.Unlock()
	n := 1
	if !endStream {
		n = 2
	}
	return c.sendCtrl(classControl, n, true, func(fr *xhttp2.Framer) {
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: block431, EndStream: true, EndHeaders: true})
		if !endStream {
			fr.WriteRSTStream(id, ErrCodeNo)
		}
	})
}

// openServerStream registers a valid request and starts (or queues) its
// handler.
func (c *conn) openServerStream(req *l7.Request, id uint32, endStream bool, contentLength int64) error {
	req.Proto = l7.HTTP2
	switch {
	case contentLength >= 0:
		req.ContentLength = contentLength
	case endStream:
		req.ContentLength = 0
	default:
		req.ContentLength = -1
	}
	if endStream && contentLength > 0 {
		putRequest(req)
		return streamErr{id, ErrCodeProtocol, "malformed request: content-length without DATA"}
	}
	st := &ServerStream{}
	s := &st.s
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		putRequest(req)
		return nil
	}
	if uint32(len(c.streams)) >= c.cfg.MaxConcurrentStreams {
		c.mu.Unlock()
		putRequest(req)
		return streamErr{id, ErrCodeRefusedStream, "over SETTINGS_MAX_CONCURRENT_STREAMS"}
	}
	s.init(c, id)
	s.start = time.Now()
	s.req, s.trailer = req, &req.Trailer
	s.refs.Store(2)
	s.wantLen = contentLength
	if endStream {
		s.remoteEnd, s.eof = true, true
	} else {
		st.body.s = s
		req.Body = &st.body
	}
	st.ctx = streamContext{s: s, parent: c.srv.baseCtx}
	c.streams[id] = s
	switch {
	case c.srv.handlers < int(c.cfg.MaxConcurrentStreams):
		c.srv.handlers++
		if k := len(c.srv.idle); k > 0 {
			ch := c.srv.idle[k-1]
			c.srv.idle = c.srv.idle[:k-1]
			ch <- st // buffered: never blocks
			break
		}
		c.wg.Add(1) // c.mu held and c not closed: see goTracked
		go c.runHandler(st)
	case len(c.srv.pending) >= pendingHandlersPerStream*int(c.cfg.MaxConcurrentStreams):
		c.mu.Unlock()
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "too many streams waiting for a handler", def: DefencePendingStreams}
	default:
		c.srv.pending = append(c.srv.pending, st)
	}
	c.mu.Unlock()
	return nil
}

// runHandler runs the handler of st, then of pending streams while there
// are any, then waits up to handlerIdleTimeout for the next stream as one
// of at most maxIdleHandlers idle handlers, on a goroutine tracked by c.wg.
func (c *conn) runHandler(st *ServerStream) {
	defer c.wg.Done()
	var (
		ch    chan *ServerStream
		timer *time.Timer
	)
	for st != nil {
		c.srv.handler.ServeHTTP2(st)
		if !st.detached {
			st.finish()
		}
		c.mu.Lock()
		st = c.nextPendingLocked()
		if st != nil {
			c.mu.Unlock()
			continue
		}
		c.srv.handlers--
		c.maybeIdleLocked()
		if c.closed || len(c.srv.idle) >= maxIdleHandlers {
			c.mu.Unlock()
			break
		}
		if ch == nil {
			ch = make(chan *ServerStream, 1)
			timer = time.NewTimer(handlerIdleTimeout)
		} else {
			timer.Reset(handlerIdleTimeout)
		}
		c.srv.idle = append(c.srv.idle, ch)
		c.mu.Unlock()
		select {
		case st = <-ch: // nil when the connection shut down
		case <-timer.C:
			c.mu.Lock()
			if i := slices.Index(c.srv.idle, ch); i >= 0 {
				c.srv.idle = slices.Delete(c.srv.idle, i, i+1)
			} else {
				st = <-ch // handed a stream as the timer fired
			}
			c.mu.Unlock()
		}
	}
	if timer != nil {
		timer.Stop()
	}
}

// nextPendingLocked takes the first pending stream that is still open.
func (c *conn) nextPendingLocked() *ServerStream {
	for len(c.srv.pending) > 0 {
		next := c.srv.pending[0]
		n := copy(c.srv.pending, c.srv.pending[1:])
		c.srv.pending[n] = nil
		c.srv.pending = c.srv.pending[:n]
		if next.s.closed {
			next.s.release()
			continue
		}
		return next
	}
	return nil
}

// releaseIdleHandlersLocked ends the idle handler goroutines (shutdown).
func (c *conn) releaseIdleHandlersLocked() {
	for _, ch := range c.srv.idle {
		ch <- nil
	}
	c.srv.idle = nil
}

// finish ends what the handler left open (see Handler) and drops the
// handler's hold on the stream.
func (st *ServerStream) finish() {
	s := &st.s
	c := s.c
	s.stopReading()
	c.mu.Lock()
	closed, responded, localEnd := s.closed, s.responded, s.localEnd
	c.mu.Unlock()
	switch {
	case closed:
	case !responded:
		c.resetStream(s, ErrCodeInternal, "handler returned without a response", false)
	case !localEnd:
		s.writeData(nil, true)
	}
	c.mu.Lock()
	cut := !s.closed && s.localEnd && !s.remoteEnd
	c.mu.Unlock()
	if cut {
		c.resetStream(s, ErrCodeNo, "response complete before the request", false)
	}
	s.cancelCtx()
	s.release()
}

var requestPool = sync.Pool{New: func() any { return new(l7.Request) }}

func getRequest() *l7.Request {
	r := requestPool.Get().(*l7.Request)
	r.Reset()
	return r
}

func putRequest(r *l7.Request) {
	r.Reset()
	requestPool.Put(r)
}

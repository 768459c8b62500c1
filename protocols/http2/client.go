package http2

import (
	"context"
	"errors"
	"io"
	"time"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ClientConn is the client side of one HTTP/2 connection (prior knowledge,
// over whatever byte stream the caller dialled). It multiplexes streams
// up to the server's SETTINGS_MAX_CONCURRENT_STREAMS and is safe for
// concurrent use.
//
// Goroutines: one read loop, started by NewClientConn and ending when the
// connection ends (Close, Shutdown, connection loss, or a fatal protocol
// error); before it ends it waits for the goroutines it owns: short-lived
// flushers (writing what the read loop queued) and the request-body
// writers of RoundTrip. Close waits for the read loop.
type ClientConn struct {
	c *conn
}

// clientState is the client part of a conn; guarded by c.mu.
type clientState struct {
	// nextID is the next stream id; ids are taken under the write lock so
	// that HEADERS leave in id order.
	nextID uint32
	// active counts stream slots taken (streams open or being opened);
	// reserved counts TryReserve reservations not yet used, the newest
	// taken at reservedAt.
	active     int
	reserved   int
	reservedAt time.Time
	slotWait   chan struct{} // closed when a slot may have freed
	goAway     *GoAwayError  // the server's GOAWAY
	closing    bool          // Shutdown called
	readDone   chan struct{} // closed when the read loop has ended
	readErr    error
	// settings is closed once the server's first SETTINGS was applied, or
	// the handshake failed.
	settings chan struct{}
}

// reservationTimeout: a reservation not used by a RoundTrip or OpenStream
// within this long lapses, so a caller that reserves and never sends
// cannot leak a slot.
var reservationTimeout = time.Second

// maxInlineBody: a request body of known length up to this size is read
// by RoundTrip itself and sent with the headers (one flush); larger or
// unknown bodies are sent by a goroutine the stream owns.
const maxInlineBody = 16 << 10

func (s *clientState) notifySlotsLocked() {
	if s.slotWait != nil {
		close(s.slotWait)
		s.slotWait = nil
	}
}

func (s *clientState) closeLocked() { s.notifySlotsLocked() }

func (s *clientState) lapseLocked() {
	if s.reserved > 0 && time.Since(s.reservedAt) > reservationTimeout {
		s.reserved = 0
		s.notifySlotsLocked()
	}
}

// NewClientConn starts a client connection on conn: it writes the preface
// and our SETTINGS and starts the read loop. Requests may be sent at once.
// conn is closed when the ClientConn ends (or if NewClientConn fails).
func NewClientConn(conn io.ReadWriteCloser, cfg Config) (*ClientConn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := newConn(conn, cfg, false)
	c.cli.nextID = 1
	c.cli.readDone = make(chan struct{})
	c.cli.settings = make(chan struct{})
	if err := c.writeSettings(); err != nil {
		c.closeTransport()
		return nil, err
	}
	c.startTimers()
	go c.clientReadLoop()
	return &ClientConn{c: c}, nil
}

func (c *conn) clientReadLoop() {
	hs := time.AfterFunc(c.cfg.HandshakeTimeout, c.closeTransport)
	err := c.clientHandshake()
	hs.Stop()
	close(c.cli.settings)
	if err == nil {
		err = c.readFrames()
	}
	err = c.endReadLoop(err)
	c.mu.Lock()
	c.cli.readErr = err
	c.mu.Unlock()
	c.wg.Wait()
	close(c.cli.readDone)
}

func (c *conn) clientHandshake() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*xhttp2.SettingsFrame)
	if !ok || sf.IsAck() {
		return connErr{code: ErrCodeProtocol, reason: "first frame from the server is not SETTINGS"}
	}
	return c.onSettings(sf)
}

// WaitSettings waits until the server's first SETTINGS frame has been
// applied (so that its stream limit and windows are known) or ctx is done;
// it returns the connection's error if the handshake failed.
func (cc *ClientConn) WaitSettings(ctx context.Context) error {
	select {
	case <-cc.c.cli.settings:
	case <-ctx.Done():
		return ctx.Err()
	}
	c := cc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usableErrLocked()
}

// usableErrLocked says why no new stream may start, or nil.
func (c *conn) usableErrLocked() error {
	switch {
	case c.closed:
		if c.err != nil {
			return c.err
		}
		return ErrClosed
	case c.cli.goAway != nil:
		return c.cli.goAway
	case c.cli.closing:
		return ErrClosed
	case c.cli.nextID > maxWindow-2*uint32(c.cli.active+c.cli.reserved):
		return &GoAwayError{LastStreamID: c.cli.nextID - 2, Debug: "stream ids exhausted"}
	}
	return nil
}

// TryReserve reserves a stream slot if the server's
// SETTINGS_MAX_CONCURRENT_STREAMS allows one more and the connection is
// usable (no GOAWAY, not closing). The next RoundTrip or OpenStream uses
// the reservation; one unused for a second lapses, so reservations cannot
// leak.
func (cc *ClientConn) TryReserve() bool {
	c := cc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.usableErrLocked() != nil {
		return false
	}
	c.cli.lapseLocked()
	if c.cli.active+c.cli.reserved >= int(c.peerMaxStreams) {
		return false
	}
	c.cli.reserved++
	c.cli.reservedAt = time.Now()
	return true
}

// ClientConnState is a snapshot of a ClientConn, for pools.
type ClientConnState struct {
	// ActiveStreams counts streams open or being opened.
	ActiveStreams int
	// Reserved counts unused reservations.
	Reserved int
	// MaxConcurrentStreams is the server's limit (100 until its SETTINGS
	// say otherwise).
	MaxConcurrentStreams uint32
	// GoAway is set once the server sent GOAWAY: no new streams.
	GoAway bool
	// Closed is set once the connection has ended.
	Closed bool
	// IdleSince is when the connection last had no stream; zero while
	// streams are active.
	IdleSince time.Time
}

// State returns a snapshot of the connection.
func (cc *ClientConn) State() ClientConnState {
	c := cc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cli.lapseLocked()
	st := ClientConnState{
		ActiveStreams:        c.cli.active,
		Reserved:             c.cli.reserved,
		MaxConcurrentStreams: c.peerMaxStreams,
		GoAway:               c.cli.goAway != nil || c.cli.closing,
		Closed:               c.closed,
	}
	if c.cli.active == 0 {
		st.IdleSince = c.lastIdle
	}
	return st
}

// acquireSlot takes a stream slot: a reservation if there is one, else a
// free slot, waiting for one until ctx is done.
func (c *conn) acquireSlot(ctx context.Context) error {
	c.mu.Lock()
	for {
		if err := c.usableErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		c.cli.lapseLocked()
		if c.cli.reserved > 0 {
			c.cli.reserved--
			c.cli.active++
			c.mu.Unlock()
			return nil
		}
		if c.cli.active < int(c.peerMaxStreams) {
			c.cli.active++
			c.mu.Unlock()
			return nil
		}
		if c.cli.slotWait == nil {
			c.cli.slotWait = make(chan struct{})
		}
		ch := c.cli.slotWait
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
}

// releaseSlotLocked gives back a slot of a stream that never opened.
func (c *conn) releaseSlotLocked() {
	c.cli.active--
	c.cli.notifySlotsLocked()
	c.maybeIdleLocked()
}

// cliGoAway handles the server's GOAWAY: streams above its last stream id
// were not processed and fail with a GoAwayError (safe to retry); the
// connection takes no new stream and closes once the others are done.
func (c *conn) cliGoAway(f *xhttp2.GoAwayFrame) error {
	ge := &GoAwayError{LastStreamID: f.LastStreamID, Code: f.ErrCode, Debug: string(f.DebugData())}
	c.mu.Lock()
	c.cli.goAway = ge
	c.draining = true
	var failed []*stream
	for id, s := range c.streams {
		if id > f.LastStreamID {
			s.sendErr = ge
			s.refs.Add(1)
			failed = append(failed, s)
		}
	}
	for _, s := range failed {
		c.closeStreamLocked(s)
	}
	c.cli.notifySlotsLocked()
	c.maybeIdleLocked()
	c.mu.Unlock()
	for _, s := range failed {
		s.abort(ge, true)
		s.release()
	}
	return nil
}

// cliBeginHeaders routes a server's header block: response headers,
// trailers, or a block decoded only for HPACK's sake.
func (c *conn) cliBeginHeaders() error {
	id := c.blk.id
	c.mu.Lock()
	s := c.streams[id]
	if s == nil {
		idle := c.isIdleLocked(id)
		ignore := c.wasResetLocked(id)
		c.mu.Unlock()
		switch {
		case idle:
			return connErr{code: ErrCodeProtocol, reason: "HEADERS on an idle stream"}
		case !ignore:
			return connErr{code: ErrCodeStreamClosed, reason: "HEADERS on a closed stream"}
		}
		c.hdec.begin(blockDiscard, nil, nil, nil)
		return nil
	}
	remoteEnd := s.remoteEnd
	s.refs.Add(1) // held while the block is decoded, taken while s is surely alive
	c.mu.Unlock()
	cs := s.cs
	c.blk.s = s
	switch {
	case c.blk.hasErr:
		c.hdec.begin(blockDiscard, nil, nil, nil)
	case remoteEnd:
		c.blk.hasErr, c.blk.errCode, c.blk.errReason = true, ErrCodeStreamClosed, "HEADERS after END_STREAM"
		c.hdec.begin(blockDiscard, nil, nil, nil)
	case !cs.gotResp:
		cs.resp.Header.Reset()
		cs.resp.Status = 0
		c.hdec.begin(blockResponse, nil, &cs.resp, nil)
	case !c.blk.endStream:
		c.blk.hasErr, c.blk.errCode, c.blk.errReason = true, ErrCodeProtocol, "trailers without END_STREAM"
		c.hdec.begin(blockDiscard, nil, nil, nil)
	default:
		c.hdec.begin(blockTrailers, nil, nil, &cs.resp.Trailer)
	}
	return nil
}

// cliEndHeaders acts on a complete server header block.
func (c *conn) cliEndHeaders() error {
	b, d := &c.blk, &c.hdec
	if b.hasErr {
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
	case blockResponse:
		s := b.s
		cs := s.cs
		if d.over {
			return streamErr{b.id, ErrCodeProtocol, "response headers over the header list limits"}
		}
		if d.bad != "" {
			return streamErr{b.id, ErrCodeProtocol, "malformed response: " + d.bad}
		}
		r := &cs.resp
		if r.Status < 200 {
			if b.endStream {
				return streamErr{b.id, ErrCodeProtocol, "informational response with END_STREAM"}
			}
			r.Header.Reset()
			return nil
		}
		r.Proto = l7.HTTP2
		switch {
		case d.contentLength >= 0:
			r.ContentLength = d.contentLength
		case b.endStream:
			r.ContentLength = 0
		default:
			r.ContentLength = -1
		}
		if !b.endStream {
			r.Body = &responseBody{cs: cs, gen: cs.gen.Load()}
		}
		s.mu.Lock()
		if !cs.head && r.Status != 204 && r.Status != 304 {
			s.wantLen = d.contentLength
		}
		cs.gotResp = true
		s.cond.Broadcast()
		s.mu.Unlock()
		if b.endStream {
			return s.endOfStream()
		}
	}
	return nil
}

// RoundTrip sends req and returns the response once its headers arrive.
// HEADERS carry END_STREAM when req.Body is nil; otherwise the body is
// sent as DATA, then req.Trailer (if it has fields once Body returned
// io.EOF) or an empty END_STREAM. A body of known length up to 16 KiB is
// sent by RoundTrip with the headers; any other body by a goroutine the
// stream owns, concurrently with the response (full duplex), ending with
// the body; if the stream ends first and Body implements io.Closer, it is
// closed to unblock that goroutine (its Close must not block).
//
// resp.Body (nil when the response has none) streams the DATA; Trailer
// is filled before it returns io.EOF. Read it to io.EOF or close it (it
// is an io.ReadCloser): closing early, or cancelling ctx before the
// stream is done, sends RST_STREAM(CANCEL). The response belongs to the
// caller until it closes the body: then the response, its byte slices
// included, may be reused for another stream (as the l7 model allows), so
// keep copies of what is needed later; a body read to io.EOF and not
// closed leaves the response to the caller for good. A response without a
// body needs no Close. req may be reused once RoundTrip returns if it had
// no body or its body was sent inline.
func (cc *ClientConn) RoundTrip(ctx context.Context, req *l7.Request) (*l7.Response, error) {
	cs, err := cc.open(ctx, req, req.Body == nil, req.Body, true)
	if err != nil {
		return nil, err
	}
	if err := cs.awaitResponse(ctx); err != nil {
		cs.Close()
		return nil, err
	}
	return &cs.resp, nil
}

// OpenStream sends req's headers without END_STREAM and returns the
// stream, for CONNECT tunnels and other full-duplex uses: write with
// Write, WriteTrailers and CloseWrite, read the response with Response
// and Read. req.Body is ignored. Cancelling ctx before the stream is done
// resets it (CANCEL).
func (cc *ClientConn) OpenStream(ctx context.Context, req *l7.Request) (*ClientStream, error) {
	return cc.open(ctx, req, false, nil, false)
}

// open takes a slot, writes the headers (and a small body) and starts the
// body goroutine.
func (cc *ClientConn) open(ctx context.Context, req *l7.Request, endStream bool, body io.Reader, recyclable bool) (*ClientStream, error) {
	c := cc.c
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.Method == "" {
		return nil, errors.New("http2: request without a method")
	}
	if req.Method == l7.MethodConnect && len(req.Authority) == 0 {
		return nil, errors.New("http2: CONNECT request without an authority")
	}
	var inline []byte
	var bufp *[]byte
	if body != nil && req.ContentLength >= 0 && req.ContentLength <= maxInlineBody {
		bufp = copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bufp)
		n, err := io.ReadFull(body, (*bufp)[:req.ContentLength+1])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, err
		}
		if int64(n) != req.ContentLength {
			return nil, errors.New("http2: request body length differs from ContentLength")
		}
		inline, body = (*bufp)[:n], nil
	}
	// A body whose bytes have already arrived (a request relayed from an
	// HTTP/2 stream) goes with the headers too: whole when it has ended,
	// else its first bytes, the rest from the body goroutine.
	if _, ok := body.(l7.TryReader); ok && inline == nil {
		bufp = copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bufp)
		n, err := l7.TryReadFull(body, (*bufp)[:maxInlineBody])
		switch {
		case err == io.EOF:
			inline, body = (*bufp)[:n], nil
		case err != nil:
			return nil, err
		case n > 0:
			inline = (*bufp)[:n]
		}
	}
	// rest is the body left for the body goroutine after inline.
	rest := body
	if err := c.acquireSlot(ctx); err != nil {
		return nil, err
	}
	upper, err := checkNames(&req.Header, "request header")
	if err != nil {
		c.mu.Lock()
		c.releaseSlotLocked()
		c.mu.Unlock()
		return nil, err
	}
	cs := clientStreamPool.Get().(*ClientStream)
	cs.recyclable = recyclable
	cs.ctx, cs.reqBody, cs.reqTrailer = ctx, body, &req.Trailer
	cs.head = req.Method == l7.MethodHead
	s := &cs.s

	if err := c.w.lock(); err != nil {
		c.w.unlock()
		c.mu.Lock()
		c.releaseSlotLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Lock()
	err = c.usableErrLocked()
	if err == nil && req.Protocol != "" && c.peerSettings && !c.peerConnectExt {
		err = errors.New("http2: extended CONNECT (:protocol " + req.Protocol + ") not enabled by the server's SETTINGS")
	}
	if err != nil {
		c.releaseSlotLocked()
		c.mu.Unlock()
		c.w.unlock()
		return nil, err
	}
	id := c.cli.nextID
	c.cli.nextID += 2
	s.init(c, id)
	s.refs.Store(2) // the caller's and the connection's
	c.streams[id] = s
	c.opened++
	// A small body (or the first bytes of one) goes with the headers if
	// the windows take it now: whole, with END_STREAM, when it has ended
	// and has no trailers.
	fits := inline != nil && int64(len(inline)) <= min(s.sendWin, c.connSendWin, int64(c.peerMaxFrame), maxDataFrame)
	whole := fits && rest == nil && req.Trailer.Len() == 0
	if fits {
		s.sendWin -= int64(len(inline))
		c.connSendWin -= int64(len(inline))
	}
	if endStream || whole {
		s.localEnd = true
	}
	c.mu.Unlock()
	err = s.writeBlockLocked(c.w.enc.request(req, !endStream, upper), endStream || (whole && len(inline) == 0))
	if err == nil && fits && len(inline) > 0 {
		err = c.w.writeData(id, whole, inline)
		c.dataSent.Add(1)
	}
	c.w.unlock()
	if err != nil {
		return nil, err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, cs.contextDone)
		c.mu.Lock()
		if s.closed {
			stop()
		} else {
			cs.stopCtx = stop
		}
		c.mu.Unlock()
	}
	if inline != nil && !fits && rest != nil {
		// The first bytes wait for window: send them before the rest (if
		// this fails, so does the body goroutine, and the stream's reader
		// sees why).
		s.writeData(inline, false)
	}
	switch {
	case whole:
	case rest == nil && inline != nil:
		end := req.Trailer.Len() == 0
		if fits {
			if !end {
				s.writeTrailers(&req.Trailer)
			}
		} else if _, err := s.writeData(inline, end); err == nil && !end {
			s.writeTrailers(&req.Trailer)
		}
	case body != nil:
		s.refs.Add(1) // the body goroutine's
		if !c.goTracked(cs.sendBody) {
			s.release()
			c.resetStream(s, ErrCodeCancel, "connection closed", false)
		}
	}
	return cs, nil
}

// Drain starts a graceful close and returns at once: the connection takes
// no new stream (reservations lapse), the streams in flight finish, and
// then it sends GOAWAY and closes, on goroutines it owns. Close still ends
// it at once. Shutdown is Drain and a wait.
func (cc *ClientConn) Drain() {
	c := cc.c
	c.mu.Lock()
	c.cli.closing = true
	c.draining = true
	c.cli.reserved = 0
	c.cli.notifySlotsLocked()
	c.maybeIdleLocked()
	c.mu.Unlock()
}

// Shutdown closes the connection gracefully: no new streams, streams in
// flight finish, then GOAWAY and close. If ctx ends first the connection
// is closed at once and ctx's error returned.
func (cc *ClientConn) Shutdown(ctx context.Context) error {
	c := cc.c
	cc.Drain()
	select {
	case <-c.cli.readDone:
		return nil
	case <-ctx.Done():
		cc.Close()
		return ctx.Err()
	}
}

// Close ends the connection at once: streams fail with ErrClosed. It
// waits for the read loop (and the goroutines it owns) to end.
func (cc *ClientConn) Close() error {
	c := cc.c
	c.mu.Lock()
	c.graceful = true
	c.mu.Unlock()
	c.shutdown(ErrClosed)
	<-c.cli.readDone
	return nil
}

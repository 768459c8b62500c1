package http2

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ClientStream is one stream of a ClientConn. Reading (Response, Read)
// and writing (Write, WriteTrailers, CloseWrite) may happen on two
// goroutines at once; two goroutines must not write at once.
type ClientStream struct {
	s    stream
	resp l7.Response
	ctx  context.Context
	// recyclable is set for RoundTrip's streams, which the caller never
	// holds: only the response and its body handle.
	recyclable bool
	// gen counts recyclings; a body handle of an earlier one is stale.
	gen  atomic.Uint32
	head bool
	// gotResp is set by the read loop (under s.mu) when the final
	// response headers are in resp.
	gotResp bool

	reqBody    io.Reader
	reqTrailer *l7.Header
	bodyClosed atomic.Bool
	// stopCtx stops the AfterFunc watching the caller's context; guarded
	// by c.mu, called when the stream leaves the connection. noRecycle
	// (c.mu) is set when that came too late.
	stopCtx   func() bool
	noRecycle bool
	// callerDone is set once the caller gave the stream back (Close).
	callerDone atomic.Bool
}

var clientStreamPool = sync.Pool{New: func() any {
	cs := new(ClientStream)
	cs.s.cs = cs
	cs.s.trailer = &cs.resp.Trailer
	return cs
}}

// maxRecycledHeader: a stream whose response header held more than this
// is not recycled, so that the pool does not keep large arenas.
const maxRecycledHeader = 8 << 10

// recycle returns the stream to the pool once nobody holds it.
func (cs *ClientStream) recycle() {
	if !cs.recyclable || cs.noRecycle || headerBytes(&cs.resp.Header)+headerBytes(&cs.resp.Trailer) > maxRecycledHeader {
		return
	}
	cs.gen.Add(1)
	cs.s.buf.reset()
	cs.s = stream{cs: cs, trailer: &cs.resp.Trailer}
	cs.resp.Reset()
	cs.ctx, cs.head, cs.gotResp, cs.recyclable = nil, false, false, false
	cs.reqBody, cs.reqTrailer, cs.stopCtx = nil, nil, nil
	cs.bodyClosed.Store(false)
	cs.callerDone.Store(false)
	clientStreamPool.Put(cs)
}

func headerBytes(h *l7.Header) int {
	n := 0
	for _, f := range h.Fields() {
		n += len(f.Name) + len(f.Value)
	}
	return n
}

// contextDone resets the stream when the caller's context ends first.
func (cs *ClientStream) contextDone() {
	cs.s.c.resetStream(&cs.s, ErrCodeCancel, "context done", false)
}

// responseBody is a RoundTrip response's Body: an io.ReadCloser bound
// to one use of a (recyclable) ClientStream.
type responseBody struct {
	cs  *ClientStream
	gen uint32
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.gen != b.cs.gen.Load() {
		return 0, ErrStreamDone
	}
	return b.cs.s.read(p)
}

// TryRead implements l7.TryReader.
func (b *responseBody) TryRead(p []byte) (int, error) {
	if b.gen != b.cs.gen.Load() {
		return 0, ErrStreamDone
	}
	return b.cs.s.tryRead(p)
}

func (b *responseBody) Close() error {
	if b.gen != b.cs.gen.Load() {
		return nil
	}
	return b.cs.Close()
}

// ID returns the stream id.
func (cs *ClientStream) ID() uint32 { return cs.s.id }

// awaitResponse waits for the final response headers.
func (cs *ClientStream) awaitResponse(ctx context.Context) error {
	s := &cs.s
	s.mu.Lock()
	for !cs.gotResp && s.rerr == nil {
		s.cond.Wait()
	}
	got, err := cs.gotResp, s.rerr
	s.mu.Unlock()
	if got {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Response waits for the response headers and returns the response. Its
// Body is the stream itself (Read), nil if the response has none;
// Trailer is filled before Read returns io.EOF.
func (cs *ClientStream) Response() (*l7.Response, error) {
	if err := cs.awaitResponse(cs.ctx); err != nil {
		return nil, err
	}
	return &cs.resp, nil
}

// Read reads the response body (DATA), then io.EOF once the server ended
// its side, or the stream's error.
func (cs *ClientStream) Read(p []byte) (int, error) { return cs.s.read(p) }

// WaitRead blocks until Read would not block: data is buffered, the
// response body ended, or the stream failed.
func (cs *ClientStream) WaitRead() error { return cs.s.waitRead() }

// TryRead reads the response body without waiting: what is buffered, or
// its end (io.EOF) or failure; (0, nil) when nothing has arrived.
func (cs *ClientStream) TryRead(p []byte) (int, error) { return cs.s.tryRead(p) }

// TryReadChunk is TryRead without a copy: it hands over the next chunk of
// the response body as it arrived, which the caller must Release; an empty
// Chunk and nil when nothing has arrived, io.EOF at the body's end.
func (cs *ClientStream) TryReadChunk() (Chunk, error) { return cs.s.tryReadChunk() }

// SetReadNotify installs fn, called each time response DATA arrives, the
// body ends or the stream fails (and at once if input is waiting). fn runs
// on the connection's read loop or on whoever fails the stream, with no
// lock held; it must not block. nil removes it.
func (cs *ClientStream) SetReadNotify(fn func()) { cs.s.setNotify(fn) }

// Write sends p as DATA, blocking on the server's flow control windows.
func (cs *ClientStream) Write(p []byte) (int, error) { return cs.s.writeData(p, false) }

// WriteVec is Write for the buffers of bufs in turn: the frames of all of
// them go out together (one write to the transport) when the windows
// allow and no other stream waits to write. It returns the bytes sent.
func (cs *ClientStream) WriteVec(bufs [][]byte) (int, error) { return cs.s.writeVec(bufs) }

// WriteTrailers sends trailers and ends our side of the stream.
func (cs *ClientStream) WriteTrailers(h *l7.Header) error { return cs.s.writeTrailers(h) }

// CloseWrite ends our side (empty DATA with END_STREAM); the response
// may still be read.
func (cs *ClientStream) CloseWrite() error {
	_, err := cs.s.writeData(nil, true)
	return err
}

// Reset ends the stream with RST_STREAM(code).
func (cs *ClientStream) Reset(code ErrCode) {
	cs.s.c.resetStream(&cs.s, code, "reset by the client", false)
}

// Close releases the stream: what is buffered is dropped and, unless the
// stream already ended both ways, it is reset (CANCEL). The stream and
// its response may then be reused: do not touch them after Close.
// Calling Close again does nothing.
func (cs *ClientStream) Close() error {
	if !cs.callerDone.CompareAndSwap(false, true) {
		return nil
	}
	s := &cs.s
	s.stopReading()
	s.c.mu.Lock()
	done := s.closed
	s.c.mu.Unlock()
	if !done {
		s.c.resetStream(s, ErrCodeCancel, "closed by the client", false)
	}
	s.release()
	return nil
}

// sendBody copies the request body as DATA, then the trailers or an
// empty END_STREAM. It runs on a goroutine owned by the connection and
// ends with the body or the stream.
func (cs *ClientStream) sendBody() {
	s := &cs.s
	defer s.release()
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, err := cs.reqBody.Read(buf)
		if n > 0 {
			if _, werr := s.writeData(buf[:n], false); werr != nil {
				cs.closeRequestBody()
				return
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			s.c.resetStream(s, ErrCodeCancel, "reading the request body: "+err.Error(), false)
			cs.closeRequestBody()
			return
		}
	}
	if cs.reqTrailer.Len() > 0 {
		s.writeTrailers(cs.reqTrailer)
		return
	}
	s.writeData(nil, true)
}

// closeRequestBody closes a request body still being sent, once.
func (cs *ClientStream) closeRequestBody() {
	if c, ok := cs.reqBody.(io.Closer); ok && cs.bodyClosed.CompareAndSwap(false, true) {
		c.Close()
	}
}

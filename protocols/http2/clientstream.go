package http2

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ClientStream is one stream of a ClientConn. Reading (Response, Read)
// and writing (Write, WriteTrailers, CloseWrite) may happen on two
// goroutines at once; two goroutines must not write at once.
type ClientStream struct {
	s    stream
	resp l7.Response
	body responseBody
	ctx  context.Context
	head bool
	// gotResp is set by the read loop (under s.mu) when the final
	// response headers are in resp.
	gotResp bool

	reqBody    io.Reader
	reqTrailer *l7.Header
	bodyClosed atomic.Bool
}

// responseBody is a response's Body: an io.ReadCloser.
type responseBody struct{ cs *ClientStream }

func (b *responseBody) Read(p []byte) (int, error) { return b.cs.s.read(p) }
func (b *responseBody) Close() error               { return b.cs.Close() }

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

// Write sends p as DATA, blocking on the server's flow control windows.
func (cs *ClientStream) Write(p []byte) (int, error) { return cs.s.writeData(p, false) }

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
// stream already ended both ways, it is reset (CANCEL).
func (cs *ClientStream) Close() error {
	s := &cs.s
	s.stopReading()
	s.c.mu.Lock()
	done := s.closed
	s.c.mu.Unlock()
	if !done {
		s.c.resetStream(s, ErrCodeCancel, "closed by the client", false)
	}
	return nil
}

// sendBody copies the request body as DATA, then the trailers or an
// empty END_STREAM. It runs on a goroutine owned by the connection and
// ends with the body or the stream.
func (cs *ClientStream) sendBody() {
	s := &cs.s
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

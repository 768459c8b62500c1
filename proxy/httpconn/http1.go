package httpconn

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http1"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// serveHTTP1 serves HTTP/1.1 requests one after the other on rw, on the
// calling goroutine, reusing the request, stream and local-reply storage.
func (c *conn) serveHTTP1(rw io.ReadWriter) {
	sc := http1.NewServerConn(rw, http1.ServerConfig{
		Limits:      http1.Limits{MaxHeaderBytes: c.hcm.MaxRequestHeadersBytes, MaxHeaders: c.hcm.MaxHeadersCount},
		IdleTimeout: c.hcm.IdleTimeout,
	})
	var (
		req   l7.Request
		local l7.Response
		s     filters.Stream
		body  bodyWatch
		tel   streamTelemetry
	)
	// An HTTP/1.1 connection serves one request at a time on this
	// goroutine: a client that leaves is seen when the response is
	// written, so the streams' context carries no cancellation (and costs
	// no allocation per request to watch).
	ctx := context.WithoutCancel(c.ctx)
	for {
		err := sc.ReadRequest(&req)
		if err != nil {
			c.refuse(sc, rw, err)
			return
		}
		if req.Body != nil {
			body = bodyWatch{r: req.Body}
			req.Body = &body
		}
		resp, current := c.run(ctx, &s, &req, &local, &tel)
		if body.err != nil {
			// The request's own framing was broken: whatever the chain made
			// of it, the client gets its 400 (or 413, 501) and the
			// connection ends, as when the head is malformed.
			c.done(&s, resp, &tel)
			closeBody(resp)
			s.End()
			c.refuse(sc, rw, body.err)
			return
		}
		if resp.Status == 101 {
			c.done(&s, resp, &tel)
			c.upgrade(sc, &req, resp, &s)
			return
		}
		err = sc.WriteResponse(&req, resp)
		if err != nil {
			s.AddResponseFlag("DC")
		}
		c.done(&s, resp, &tel)
		closeBody(resp)
		s.End()
		if err != nil {
			c.logf("writing response", "error", err)
			return
		}
		if !sc.KeepAlive() || !current {
			return
		}
	}
}

// refuse answers a malformed request with its status, logs it, and lets
// the connection close gracefully (the client's remaining bytes are read
// and dropped for a moment, so that the answer is not lost to a reset).
func (c *conn) refuse(sc *http1.ServerConn, rw io.ReadWriter, err error) {
	var pe *http1.Error
	if !errors.As(err, &pe) {
		return
	}
	c.env.Log.Info("http: refused malformed request", "peer", c.down.Peer.String(),
		"remote", c.down.RemoteAddr, "status", pe.Status, "reason", pe.Reason)
	if sc.WriteError(pe) == nil {
		lingerClose(rw)
	}
}

// lingerClose half-closes rw and discards what the peer still sends, up to
// a bound, as nginx's lingering_close does.
func lingerClose(rw io.ReadWriter) {
	cw, ok := rw.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now().Add(lingerTimeout))
	}
	io.CopyN(io.Discard, rw, lingerBytes)
}

const (
	lingerTimeout = time.Second
	lingerBytes   = 256 << 10
)

// bodyWatch notes a request body's protocol error (bad chunk framing) on
// its way to whoever reads the body, so the connection manager can answer
// it as a malformed request.
type bodyWatch struct {
	r   io.Reader
	err error
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var pe *http1.Error
	if err != nil && errors.As(err, &pe) {
		b.err = pe
	}
	return n, err
}

// upgrade writes a 101 and relays bytes between the downstream connection
// and the upgraded upstream stream until both sides end.
func (c *conn) upgrade(sc *http1.ServerConn, req *l7.Request, resp *l7.Response, s *filters.Stream) {
	defer s.End()
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		c.logf("upgrade", "error", errUpgradeBody)
		closeBody(resp)
		return
	}
	resp.Body = nil
	if err := sc.WriteResponse(req, resp); err != nil {
		up.Close()
		return
	}
	rw, buffered := sc.Hijack()
	down := &halfConn{r: replay(buffered, rw), w: rw}
	relay.Run(down, &halfConn{r: up, w: up, c: up}, relay.Options{}, nil)
}

func replay(b []byte, r io.Reader) io.Reader {
	if len(b) == 0 {
		return r
	}
	return io.MultiReader(&byteReader{b: append([]byte(nil), b...)}, r)
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// halfConn adapts reader/writer pairs to relay.Conn; CloseWrite and Close
// use the underlying stream's when it has them.
type halfConn struct {
	r io.Reader
	w io.Writer
	c io.Closer
}

func (h *halfConn) Read(p []byte) (int, error)  { return h.r.Read(p) }
func (h *halfConn) Write(p []byte) (int, error) { return h.w.Write(p) }

func (h *halfConn) CloseWrite() error {
	if cw, ok := h.w.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (h *halfConn) Close() error {
	if h.c != nil {
		return h.c.Close()
	}
	return nil
}

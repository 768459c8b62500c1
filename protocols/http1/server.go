package http1

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ServerConn is the server side of one HTTP/1.1 connection: it reads
// requests and writes their responses, in order, one at a time
// (pipelined requests wait in the read buffer).
//
// One goroutine drives it: ReadRequest, then WriteResponse (after any
// interim 1xx), then ReadRequest again while KeepAlive is true. The
// request body may be read by another goroutine, also while WriteResponse
// runs. The caller owns the stream and closes it; ServerConn starts no
// goroutine.
type ServerConn struct {
	// Read-only after NewServerConn.
	rw     io.ReadWriter
	limits Limits

	// Owned by the driving goroutine.
	in        reader
	out       writer
	info      headInfo
	keepAlive bool // another request may follow the current one
	owed      bool // a request was read and its final response is not written
	hijacked  bool
	path      []byte // an absolute-form target's path when it needs a '/' put in front

	// Shared with the goroutine reading the request body.
	body   body
	broken atomic.Bool // the stream failed or is out of sync: close it
	// bodyFraming is set when the request body's framing was malformed:
	// the stream is out of sync for reading but can still carry the error
	// response (WriteError).
	bodyFraming atomic.Bool
	// bodyTimedOut is set when a read of the request body failed on the
	// stream's read deadline (a caller stopping it, as the connection
	// manager's request timeouts do): the stream is out of sync for
	// reading, but the response can still be written, as the
	// connection's last.
	bodyTimedOut atomic.Bool

	// expect is set by ReadRequest when the request asked for 100
	// Continue; contState, guarded by contMu, says whether it is still
	// to be sent (by the first body Read) or was sent or cancelled (by
	// WriteResponse). contMu also keeps the two from writing at once.
	expect    bool
	contMu    sync.Mutex
	contState uint8
}

const (
	contPending uint8 = iota + 1
	contDone
)

// NewServerConn returns a ServerConn reading requests from and writing
// responses to rw. If rw has SetReadDeadline, ReadRequest uses it to apply
// IdleTimeout.
func NewServerConn(rw io.ReadWriter, cfg ServerConfig) *ServerConn {
	limits := cfg.Limits.withDefaults()
	c := &ServerConn{
		rw:        rw,
		limits:    limits,
		in:        newReader(rw, bufferSize(cfg.ReadBufferSize), limits),
		out:       newWriter(rw, bufferSize(cfg.WriteBufferSize)),
		keepAlive: true,
	}
	if dl, ok := rw.(readDeadliner); ok {
		c.in.dl = dl
		c.in.timeout = cfg.IdleTimeout
		if c.in.timeout == 0 {
			c.in.timeout = DefaultIdleTimeout
		}
	}
	c.in.headStart = cfg.HeadStarted
	c.body = body{in: &c.in, limits: limits, broken: &c.broken, framing: &c.bodyFraming, timedOut: &c.bodyTimedOut, what: "request body"}
	c.body.reset(noBody, 0, nil)
	return c
}

// KeepAlive reports whether another request may follow on this
// connection: after ReadRequest, whether the request allows it; after
// WriteResponse, whether the response said so. False after any error.
func (c *ServerConn) KeepAlive() bool {
	return c.keepAlive && !c.hijacked && !c.broken.Load()
}

// CloseAfter makes the response to the request last read the
// connection's last: it carries "connection: close" and KeepAlive is
// false afterwards (the overload manager's disable_http_keepalive). Call
// it between ReadRequest and WriteResponse.
func (c *ServerConn) CloseAfter() { c.keepAlive = false }

// ReadRequest reads the next request head into req (after req.Reset).
// The slices in req point into the connection's read buffer and stay
// valid until the next ReadRequest. req.Body, when not nil, is owned by
// the connection and must be read to io.EOF before the response is
// written, or the connection is not kept alive.
//
// It returns io.EOF when the stream ended cleanly between requests, an
// *Error for a request the codec refuses (answer it with WriteError and
// close), or the stream's error.
func (c *ServerConn) ReadRequest(req *l7.Request) error {
	req.Reset()
	if c.owed {
		return errResponseOwed
	}
	if !c.KeepAlive() || !c.body.done.Load() {
		return errNotReusable
	}
	c.in.release()
	c.in.headStarted = false
	head, err := c.in.readHead(requestHead, c.limits.MaxHeaderBytes, c.limits.MaxHeaders+1, true)
	c.in.disarm()
	if err != nil {
		c.keepAlive = false
		if err == io.EOF {
			return io.EOF
		}
		if _, ok := err.(*Error); ok {
			return err
		}
		c.broken.Store(true)
		return &streamError{op: "reading request head", err: err}
	}
	if err := c.parseRequest(req, head); err != nil {
		c.keepAlive = false
		req.Body = nil
		return err
	}
	c.owed = true
	return nil
}

// streamError is a failure of the stream under the codec.
type streamError struct {
	op  string
	err error
}

func (e *streamError) Error() string { return "http1: " + e.op + ": " + e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

// sendContinue writes 100 Continue if the request asked for it and no
// response was started; the first body Read calls it.
func (c *ServerConn) sendContinue() {
	c.contMu.Lock()
	defer c.contMu.Unlock()
	if c.contState != contPending {
		return
	}
	c.contState = contDone
	if _, err := c.rw.Write(continueLine); err != nil {
		c.broken.Store(true)
	}
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// Hijack hands the stream to the caller, with the bytes already read past
// the last request head: after a 101 (or a 2xx to CONNECT) the caller
// relays raw bytes. The ServerConn is not usable afterwards; buffered is
// valid until the caller drops the stream.
func (c *ServerConn) Hijack() (rw io.ReadWriter, buffered []byte) {
	c.hijacked = true
	return c.rw, c.in.buffered()
}

package http1

import (
	"io"
	"sync/atomic"
)

// ClientConn is the client side of one HTTP/1.1 connection to an
// upstream: it writes a request and reads its response, one exchange at a
// time (no pipelining).
//
// WriteRequest and ReadResponse may run in two goroutines at once, for
// full-duplex streaming, as long as ReadResponse is called after
// WriteRequest has started; the response body may be read by a third.
// Reusable tells, once all of them are done, whether the next exchange
// may use the connection. The caller owns the stream and closes it;
// ClientConn starts no goroutine.
type ClientConn struct {
	// Read-only after NewClientConn.
	rw     io.ReadWriter
	limits Limits

	// Owned by the goroutine that writes requests.
	out writer

	// Owned by the goroutine that reads responses.
	in        reader
	info      headInfo
	responses uint64 // response heads read
	keepAlive bool   // the last response allows another exchange
	upgraded  bool   // a 101 or a 2xx to CONNECT: the stream is the caller's
	hijacked  bool

	// Shared.
	body     body          // the response body, possibly read by a third goroutine
	requests atomic.Uint64 // requests started
	sent     atomic.Bool   // the last request was written whole
	broken   atomic.Bool
}

// NewClientConn returns a ClientConn writing requests to and reading
// responses from rw.
func NewClientConn(rw io.ReadWriter, cfg ClientConfig) *ClientConn {
	limits := cfg.Limits.withDefaults()
	c := &ClientConn{
		rw:        rw,
		limits:    limits,
		in:        newReader(rw, bufferSize(cfg.ReadBufferSize), limits),
		out:       newWriter(rw, bufferSize(cfg.WriteBufferSize)),
		keepAlive: true,
	}
	c.sent.Store(true)
	c.body = body{in: &c.in, limits: limits, broken: &c.broken, what: "response body", upstream: true}
	c.body.reset(noBody, 0, nil)
	return c
}

// Reusable reports whether the connection may carry another exchange: the
// last request was written whole, its response read to the end of its
// body, neither side asked to close, and nothing failed. Call it once
// WriteRequest and ReadResponse have returned and the body was read.
func (c *ClientConn) Reusable() bool {
	return c.keepAlive && !c.upgraded && !c.hijacked && !c.broken.Load() &&
		c.sent.Load() && c.responses == c.requests.Load() && c.body.done.Load()
}

// Hijack hands the stream to the caller, with the bytes already read past
// the last response head: after a 101, or a 2xx to CONNECT, the caller
// relays raw bytes. The ClientConn is not usable afterwards; buffered is
// valid until the caller drops the stream.
func (c *ClientConn) Hijack() (rw io.ReadWriter, buffered []byte) {
	c.hijacked = true
	return c.rw, c.in.buffered()
}

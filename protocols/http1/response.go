package http1

import (
	"errors"
	"io"
	"net/http"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// WriteResponse writes resp as the response to req, the request last
// read (or the failed one, after an *Error).
//
// Framing is the codec's: Content-Length when resp.ContentLength >= 0,
// otherwise chunked (with resp.Trailer after Body's io.EOF) for HTTP/1.1
// or close-delimited for HTTP/1.0; no body for HEAD, 1xx, 204, 304 and a
// 2xx to CONNECT. Framing and connection fields in resp.Header are not
// copied. "connection: close" goes out when the connection will close;
// the request asked for it, was HTTP/1.0 without keep-alive, failed, or
// its body was not read to its end. A 101 carries "connection: upgrade"
// and "upgrade: req.Protocol"; after it, and after a 2xx to CONNECT, the
// caller calls Hijack.
//
// The head and the start of the body gather in the write buffer; the
// buffer is flushed after every Body Read that returned data, except the
// last, so a small response leaves in one write and a streamed one as it
// comes. A 1xx other than 101 is interim: it is written and flushed, and
// the final response follows with another call.
//
// An *Error (status 502) means a field of resp cannot be written and
// nothing was sent: the caller may answer otherwise. Any other error
// breaks the connection. After a request body read that failed on the
// stream's read deadline (os.ErrDeadlineExceeded: the caller stopped it)
// the response can still be written, as the connection's last.
func (c *ServerConn) WriteResponse(req *l7.Request, resp *l7.Response) error {
	if c.hijacked || (c.broken.Load() && !(c.bodyTimedOut.Load() && c.owed)) {
		return errNotReusable
	}
	status := resp.Status
	if status < 100 || status > 999 {
		return newError(502, "response: invalid status "+itoa(status))
	}
	if status < 200 && status != 101 {
		return c.writeInterim(resp)
	}
	if c.expect {
		c.contMu.Lock()
		if c.contState == contPending {
			c.contState = contDone // answered before the body was asked for
		}
		c.contMu.Unlock()
	}

	keep := c.keepAlive && c.owed && c.body.done.Load()
	upgrade := status == 101
	tunnel := req.Method == l7.MethodConnect && status/100 == 2
	if upgrade && !validProtocol(req.Protocol) {
		return newError(502, "response: 101 to a request without a valid upgrade")
	}
	if upgrade || tunnel {
		keep = false
	}
	mode, length := noBody, resp.ContentLength
	if req.Method != l7.MethodHead && status != 204 && status != 304 && !upgrade && !tunnel {
		switch {
		case resp.Body == nil:
			if length > 0 {
				return newError(502, "response: content-length "+itoa(int(length))+" without a body")
			}
			mode, length = lengthBody, 0
		case length >= 0:
			mode = lengthBody
		case req.Proto == l7.HTTP11 && c.owed:
			mode = chunkedBody
		default:
			mode, keep = closeBody, false
		}
	}

	w := &c.out
	mark, flushes := w.n, w.flushes
	w.statusLine(status)
	if err := w.fields(&resp.Header, "response header", 502); err != nil {
		if w.flushes != flushes {
			c.broken.Store(true)
		}
		w.n = mark
		return err
	}
	switch {
	case mode == lengthBody:
		w.decimalField("content-length: ", length)
	case mode == chunkedBody:
		w.writeString("transfer-encoding: chunked\r\n")
	case mode == noBody && length >= 0 && (req.Method == l7.MethodHead || status == 304):
		w.decimalField("content-length: ", length)
	}
	switch {
	case upgrade:
		w.writeString("connection: upgrade\r\nupgrade: ")
		w.writeString(req.Protocol)
		w.writeString("\r\n")
	case tunnel:
	case !keep:
		w.writeString("connection: close\r\n")
	case req.Proto == l7.HTTP10:
		w.writeString("connection: keep-alive\r\n")
	}
	w.writeString("\r\n")

	c.owed = false
	c.keepAlive = keep
	err := c.writeBody(resp, mode, length)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		c.broken.Store(true)
		c.keepAlive = false
		if _, ok := err.(*readFailed); ok {
			return &streamError{op: "reading the response body to write", err: errors.Unwrap(err)}
		}
		if _, ok := err.(*Error); ok {
			return err
		}
		return &streamError{op: "writing response", err: err}
	}
	return nil
}

func (c *ServerConn) writeBody(resp *l7.Response, mode bodyMode, length int64) error {
	w := &c.out
	switch mode {
	case lengthBody:
		if length > 0 {
			return w.copyLength(resp.Body, length)
		}
	case chunkedBody:
		if err := w.copyChunked(resp.Body); err != nil {
			return err
		}
		return w.lastChunk(&resp.Trailer, "response trailer", 502)
	case closeBody:
		return w.copyAll(resp.Body)
	}
	return w.err
}

// writeInterim writes a 1xx response other than 101 and flushes it.
func (c *ServerConn) writeInterim(resp *l7.Response) error {
	if c.expect {
		c.contMu.Lock()
		defer c.contMu.Unlock()
		if resp.Status == 100 {
			if c.contState != contPending {
				return nil // sent already, or too late to matter
			}
			c.contState = contDone
		}
	}
	w := &c.out
	mark, flushes := w.n, w.flushes
	w.statusLine(resp.Status)
	if err := w.fields(&resp.Header, "interim response header", 502); err != nil {
		if w.flushes != flushes {
			c.broken.Store(true)
		}
		w.n = mark
		return err
	}
	w.writeString("\r\n")
	if err := w.flush(); err != nil {
		c.broken.Store(true)
		c.keepAlive = false
		return &streamError{op: "writing interim response", err: err}
	}
	return nil
}

// WriteError answers a request that ReadRequest refused: err's status,
// its status text as a plain-text body, and "connection: close". It
// writes nothing for an error that is not an *Error (the stream failed).
func (c *ServerConn) WriteError(err error) error {
	e, ok := errors.AsType[*Error](err)
	if !ok || c.hijacked || (c.broken.Load() && !(c.bodyFraming.Load() && c.owed)) {
		return nil
	}
	c.owed, c.keepAlive = false, false
	text := http.StatusText(e.Status)
	w := &c.out
	w.statusLine(e.Status)
	w.writeString("content-type: text/plain; charset=utf-8\r\n")
	w.decimalField("content-length: ", int64(len(text)))
	w.writeString("connection: close\r\n\r\n")
	w.writeString(text)
	if err := w.flush(); err != nil {
		c.broken.Store(true)
		return &streamError{op: "writing error response", err: err}
	}
	return nil
}

var _ io.Reader = (*body)(nil)

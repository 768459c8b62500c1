package http1

import (
	"errors"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// WriteRequest writes req: the request line (origin-form from req.Path, "/"
// when empty, or "*" for OPTIONS; authority-form for CONNECT), Host from
// req.Authority, the fields of req.Header but the framing and connection
// ones, then the body: Content-Length when req.ContentLength >= 0,
// otherwise chunked, followed by req.Trailer (trailers are dropped with a
// Content-Length body). A POST, PUT or PATCH without a body gets
// "content-length: 0". When req.Protocol is set, "connection: upgrade" and
// "upgrade: req.Protocol" are sent; an extended CONNECT (RFC 8441: method
// CONNECT with a protocol) becomes the GET with Upgrade it stands for.
//
// The head and the start of the body leave in one write; the buffer is
// flushed after every Body Read that returned data but the last. An
// *Error (status 400) means a part of req cannot be written on HTTP/1.1
// and nothing was sent; any other error breaks the connection: a
// *ConnError when writing to the stream failed, another error when
// reading req.Body did.
func (c *ClientConn) WriteRequest(req *l7.Request) error {
	if !c.Reusable() {
		return errNotReusable
	}
	method, target, err := requestLine(req)
	if err != nil {
		return err
	}
	mode, length := noBody, req.ContentLength
	switch {
	case req.Body == nil:
		if length > 0 {
			return newError(400, "request: content-length "+itoa(int(length))+" without a body")
		}
		length = 0
		if method == l7.MethodPost || method == l7.MethodPut || method == l7.MethodPatch {
			mode = lengthBody
		}
	case length >= 0:
		mode = lengthBody
	default:
		mode = chunkedBody
	}

	w := &c.out
	flushes := w.flushes
	w.writeString(method)
	w.writeString(" ")
	w.write(target)
	w.writeString(" HTTP/1.1\r\nhost: ")
	w.write(req.Authority)
	w.writeString("\r\n")
	if err := w.fields(&req.Header, "request header", 400); err != nil {
		if w.flushes != flushes {
			c.broken.Store(true) // a head larger than the buffer went out in part
		}
		w.n = 0
		return err
	}
	if req.Protocol != "" {
		w.writeString("connection: upgrade\r\nupgrade: ")
		w.writeString(req.Protocol)
		w.writeString("\r\n")
	}
	switch mode {
	case lengthBody:
		w.decimalField("content-length: ", length)
	case chunkedBody:
		w.writeString("transfer-encoding: chunked\r\n")
	}
	w.writeString("\r\n")

	c.sent.Store(false)
	c.requests.Add(1)
	switch mode {
	case lengthBody:
		if length > 0 {
			err = w.copyLength(req.Body, length)
		}
	case chunkedBody:
		if err = w.copyChunked(req.Body); err == nil {
			err = w.lastChunk(&req.Trailer, "request trailer", 400)
		}
	}
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		c.broken.Store(true)
		if _, ok := err.(*readFailed); ok {
			return &streamError{op: "reading the request body to write", err: errors.Unwrap(err)}
		}
		if _, ok := err.(*Error); ok {
			return err
		}
		return &ConnError{Op: "writing request", Err: err, NoResponse: true}
	}
	c.sent.Store(true)
	return nil
}

// requestLine checks the parts of the request line and returns the method
// and request-target to send.
func requestLine(req *l7.Request) (method string, target []byte, err error) {
	method = req.Method
	if !isToken(method) {
		return "", nil, newError(400, "request: invalid method "+quote([]byte(method)))
	}
	if !validHost(req.Authority) {
		return "", nil, newError(400, "request: invalid authority "+quote(req.Authority))
	}
	if req.Protocol != "" && !validProtocol(req.Protocol) {
		return "", nil, newError(400, "request: invalid protocol "+quote([]byte(req.Protocol)))
	}
	switch {
	case method == l7.MethodConnect && req.Protocol == "":
		if !validAuthority(req.Authority) {
			return "", nil, newError(400, "request: CONNECT authority is not host:port")
		}
		return method, req.Authority, nil
	case method == l7.MethodConnect:
		method = l7.MethodGet
	}
	target = req.Path
	switch {
	case len(target) == 0 && method == l7.MethodOptions:
		target = asteriskPath
	case len(target) == 0:
		target = slashPath
	case target[0] != '/' && !(len(target) == 1 && target[0] == '*' && method == l7.MethodOptions):
		return "", nil, newError(400, "request: path "+quote(target)+" is not origin-form")
	case !validTarget(target):
		return "", nil, newError(400, "request: invalid character in path")
	}
	return method, target, nil
}

package http1

import "github.com/gowaypoint/waypoint/protocols/l7"

// ReadResponse reads the response to req (the request last written) into
// resp (after resp.Reset), skipping interim 1xx responses but 101. The
// slices in resp point into the connection's read buffer and stay valid
// until the next ReadResponse. resp.Body, when not nil, is owned by the
// connection; it returns io.EOF after filling resp.Trailer.
//
// A 101, or a 2xx to CONNECT, leaves the stream to the caller (Hijack).
// Framing is strict: a response with both Content-Length and
// Transfer-Encoding, differing lengths, or a transfer-coding other than
// chunked is an *Error (status 502) and the connection is not reusable.
// Without either field the body runs to the end of the stream. A stream
// that fails or ends before the response head is whole gives a
// *ConnError.
func (c *ClientConn) ReadResponse(req *l7.Request, resp *l7.Response) error {
	resp.Reset()
	if c.upgraded || c.hijacked || c.broken.Load() {
		return errNotReusable
	}
	if c.responses == c.requests.Load() {
		return errRequestUnsent
	}
	if !c.body.done.Load() {
		return errResponseUnread
	}
	c.responses++
	if err := c.readResponse(req, resp); err != nil {
		c.broken.Store(true)
		c.keepAlive = false
		resp.Body = nil
		return err
	}
	return nil
}

func (c *ClientConn) readResponse(req *l7.Request, resp *l7.Response) error {
	var head []byte
	for interim := 0; ; interim++ {
		c.in.release()
		var err error
		head, err = c.in.readHead(responseHead, c.limits.MaxHeaderBytes, c.limits.MaxHeaders+1, true)
		if err != nil {
			if _, ok := err.(*Error); ok {
				return upstreamError(err)
			}
			// Nothing of the response came if this is its first head
			// and none of it is buffered.
			return &ConnError{Op: "reading response head", Err: eofIsUnexpected(err),
				NoResponse: interim == 0 && len(c.in.buffered()) == 0}
		}
		status, proto, err := parseStatusLine(head[:c.in.lines[0]-1])
		if err != nil {
			return err
		}
		if status >= 200 || status == 101 {
			resp.Status, resp.Proto = status, proto
			break
		}
		if interim == maxInterim {
			return newError(502, "upstream sent more than "+itoa(maxInterim)+" interim responses")
		}
	}

	info := &c.info
	*info = headInfo{}
	if err := parseFields(responseHead, head, c.in.lines, 1, &resp.Header, info); err != nil {
		return upstreamError(err)
	}
	status := resp.Status
	c.keepAlive = !info.connClose && (resp.Proto == l7.HTTP11 || info.connKeepAlive)

	switch {
	case status == 101:
		if req.Protocol == "" {
			return newError(502, "upstream sent 101 to a request without upgrade")
		}
		c.upgraded = true
		c.body.reset(noBody, 0, nil)
		return nil
	case req.Method == l7.MethodConnect && req.Protocol == "" && status/100 == 2:
		c.upgraded = true
		c.body.reset(noBody, 0, nil)
		return nil
	case req.Method == l7.MethodHead || status == 204 || status == 304:
		resp.ContentLength = 0
		if status != 204 {
			resp.ContentLength = -1
			if info.lengths > 0 && info.te.fields == 0 {
				resp.ContentLength = info.length
			}
		}
		c.body.reset(noBody, 0, nil)
		return nil
	}

	mode, length, err := responseFraming(resp.Proto, info)
	if err != nil {
		return err
	}
	if mode == closeBody {
		c.keepAlive = false
	}
	resp.ContentLength = length
	c.body.reset(mode, length, &resp.Trailer)
	if mode != noBody {
		resp.Body = &c.body
	}
	return nil
}

// responseFraming decides how a response body is delimited (RFC 9112
// 6.3), refusing what a proxy cannot forward unambiguously.
func responseFraming(proto l7.Proto, info *headInfo) (bodyMode, int64, error) {
	te := &info.te
	switch {
	case te.fields > 0:
		switch {
		case info.lengths > 0:
			return 0, 0, newError(502, "upstream response head: both content-length and transfer-encoding")
		case proto == l7.HTTP10:
			return 0, 0, newError(502, "upstream response head: transfer-encoding in an HTTP/1.0 response")
		case te.codings != 1 || te.chunked != 1:
			return 0, 0, newError(502, "upstream response head: transfer-coding other than chunked")
		}
		return chunkedBody, -1, nil
	case info.lengths > 0 && info.length > 0:
		return lengthBody, info.length, nil
	case info.lengths > 0:
		return noBody, 0, nil
	}
	return closeBody, -1, nil
}

// parseStatusLine parses HTTP-version SP status-code [SP reason-phrase];
// the reason is ignored, and may be missing with its space.
func parseStatusLine(line []byte) (int, l7.Proto, error) {
	if len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return 0, 0, newError(502, "upstream status line: malformed")
	}
	var proto l7.Proto
	switch string(line[:8]) {
	case "HTTP/1.1":
		proto = l7.HTTP11
	case "HTTP/1.0":
		proto = l7.HTTP10
	default:
		return 0, 0, newError(502, "upstream status line: unsupported version")
	}
	d := line[9:12]
	if !isDigit(d[0]) || !isDigit(d[1]) || !isDigit(d[2]) || d[0] == '0' {
		return 0, 0, newError(502, "upstream status line: invalid status code")
	}
	if !validValue(line[12:]) {
		return 0, 0, newError(502, "upstream status line: invalid character in the reason")
	}
	return int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0'), proto, nil
}

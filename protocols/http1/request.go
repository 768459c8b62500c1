package http1

import "github.com/gowaypoint/waypoint/protocols/l7"

// The paths of a target that names none; handed out with cap == len, so
// that an append by a later stage copies instead of writing into them.
var (
	slashPath    = []byte("/")
	asteriskPath = []byte("*")
)

// parseRequest fills req from a request head: the request line, then the
// fields, then what they mean together (host, target form, framing,
// connection options, upgrade, 100-continue).
func (c *ServerConn) parseRequest(req *l7.Request, head []byte) error {
	lines := c.in.lines
	line := head[:lines[0]-1]

	sp := indexSP(line)
	if sp <= 0 {
		return badRequest("request line: no method")
	}
	method := line[:sp]
	rest := line[sp+1:]
	sp = indexSP(rest)
	if sp < 0 {
		return badRequest("request line: no HTTP version")
	}
	target, version := rest[:sp:sp], rest[sp+1:]
	proto, err := parseVersion(version)
	if err != nil {
		return err
	}
	if !isToken(method) {
		return badRequest("request line: invalid method")
	}
	if len(target) == 0 {
		return badRequest("request line: empty request-target")
	}
	if !validTarget(target) {
		return badRequest("request line: invalid character in the request-target")
	}
	req.Method = l7.InternMethod(method)
	req.Scheme = "http"
	req.Proto = proto

	info := &c.info
	*info = headInfo{}
	if err := parseFields(requestHead, head, lines, 1, &req.Header, info); err != nil {
		return err
	}

	if info.hosts > 1 {
		return badRequest("request head: more than one host")
	}
	if info.hosts == 0 && proto == l7.HTTP11 {
		return badRequest("request head: no host")
	}
	if !validHost(info.host) {
		return badRequest("request head: invalid host " + quote(info.host))
	}
	if err := c.setTarget(req, target, info); err != nil {
		return err
	}

	mode, length, err := requestFraming(proto, info)
	if err != nil {
		return err
	}
	if req.Method == l7.MethodConnect && mode != noBody {
		return badRequest("request head: CONNECT with a body")
	}
	req.ContentLength = length
	c.body.reset(mode, length, &req.Trailer)
	if mode != noBody {
		req.Body = &c.body
	}

	c.keepAlive = !info.connClose && (proto == l7.HTTP11 || info.connKeepAlive)
	if proto == l7.HTTP11 && info.connUpgrade && info.upgrades > 0 && req.Method != l7.MethodConnect {
		if req.Protocol, err = upgradeProtocol(info.upgrade); err != nil {
			return err
		}
	}

	c.expect = info.expectContinue && proto == l7.HTTP11 && mode != noBody
	if c.expect {
		c.contState = contPending
		c.body.cont = c
	}
	return nil
}

// setTarget sets Authority and Path from the request-target and Host.
func (c *ServerConn) setTarget(req *l7.Request, target []byte, info *headInfo) error {
	switch {
	case req.Method == l7.MethodConnect:
		if !validAuthority(target) {
			return badRequest("request line: CONNECT target is not host:port")
		}
		if info.hosts == 1 && !equalFoldBytes(info.host, target) {
			return badRequest("request head: host does not match the CONNECT target")
		}
		req.Authority = target
	case target[0] == '/':
		req.Authority, req.Path = info.host, target
	case len(target) == 1 && target[0] == '*':
		if req.Method != l7.MethodOptions {
			return badRequest("request line: asterisk-form target for " + req.Method)
		}
		req.Authority, req.Path = info.host, asteriskPath[:1:1]
	default:
		authority, path, err := c.absoluteTarget(req.Method, target)
		if err != nil {
			return err
		}
		if info.hosts == 1 && !equalFoldBytes(info.host, authority) {
			return badRequest("request head: host does not match the absolute-form target")
		}
		req.Authority, req.Path = authority, path
	}
	return nil
}

// absoluteTarget splits an absolute-form target (http or https only) into
// its authority and its path, "/" (or "*" for OPTIONS) when empty.
func (c *ServerConn) absoluteTarget(method string, target []byte) (authority, path []byte, err error) {
	var rest []byte
	switch {
	case len(target) > 7 && equalFold(target[:7], "http://"):
		rest = target[7:]
	case len(target) > 8 && equalFold(target[:8], "https://"):
		rest = target[8:]
	default:
		return nil, nil, badRequest("request line: request-target in no known form")
	}
	end := len(rest)
	for i, ch := range rest {
		if ch == '/' || ch == '?' {
			end = i
			break
		}
	}
	authority, path = rest[:end:end], rest[end:]
	if len(authority) == 0 || !validHost(authority) {
		return nil, nil, badRequest("request line: invalid authority in the absolute-form target")
	}
	switch {
	case len(path) == 0 && method == l7.MethodOptions:
		path = asteriskPath[:1:1]
	case len(path) == 0:
		path = slashPath[:1:1]
	case path[0] == '?':
		c.path = append(append(c.path[:0], '/'), path...)
		path = c.path[:len(c.path):len(c.path)]
	}
	return authority, path, nil
}

// validAuthority reports whether t is host:port, as a CONNECT target is.
func validAuthority(t []byte) bool {
	colon := -1
	for i, ch := range t {
		if ch == ':' {
			colon = i
		}
	}
	if colon <= 0 || colon == len(t)-1 || !validHost(t) {
		return false
	}
	_, ok := parseDecimal(t[colon+1:])
	return ok
}

// requestFraming decides how a request body is delimited (RFC 9112 6.3),
// refusing every ambiguous case.
func requestFraming(proto l7.Proto, info *headInfo) (bodyMode, int64, error) {
	te := &info.te
	switch {
	case te.fields > 0:
		switch {
		case info.lengths > 0:
			return 0, 0, badRequest("request head: both content-length and transfer-encoding")
		case proto == l7.HTTP10:
			return 0, 0, badRequest("request head: transfer-encoding in an HTTP/1.0 request")
		case !te.lastChunked:
			return 0, 0, badRequest("request head: transfer-encoding does not end in chunked")
		case te.chunked > 1:
			return 0, 0, badRequest("request head: chunked applied more than once")
		case te.other:
			return 0, 0, newError(501, "request head: transfer-coding other than chunked")
		}
		return chunkedBody, -1, nil
	case info.lengths > 0 && info.length > 0:
		return lengthBody, info.length, nil
	}
	return noBody, 0, nil
}

// upgradeProtocol returns the first protocol of an Upgrade value, or ""
// for h2c, which a proxy does not honour.
func upgradeProtocol(value []byte) (string, error) {
	p, _ := nextElement(value)
	if !validProtocol(p) {
		return "", badRequest("request head: invalid upgrade " + quote(value))
	}
	switch {
	case equalFold(p, "websocket"):
		return "websocket", nil
	case equalFold(p, "h2c"):
		return "", nil
	}
	return string(p), nil
}

// validProtocol reports whether p is protocol-name ["/" protocol-version].
func validProtocol[S ~string | ~[]byte](p S) bool {
	slash := -1
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && slash < 0 {
			slash = i
		}
	}
	if slash < 0 {
		return isToken(p)
	}
	return isToken(p[:slash]) && isToken(p[slash+1:])
}

// parseVersion parses HTTP-version: 1.0 and 1.1 are served, another
// well-formed version is refused with 505.
func parseVersion(v []byte) (l7.Proto, error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, badRequest("request line: invalid HTTP version")
	}
	if v[5] == '1' && v[7] == '1' {
		return l7.HTTP11, nil
	}
	if v[5] == '1' && v[7] == '0' {
		return l7.HTTP10, nil
	}
	return 0, newError(505, "request line: HTTP version "+string(v)+" not supported")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func indexSP(b []byte) int {
	for i, c := range b {
		if c == ' ' {
			return i
		}
	}
	return -1
}

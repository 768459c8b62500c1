package l7

import "io"

// Proto is the wire protocol a message came in or goes out on.
type Proto uint8

// Protocols.
const (
	ProtoUnknown Proto = iota
	HTTP10
	HTTP11
	HTTP2
	// Dubbo is Dubbo 2 over TCP (a call, mapped as protocols/dubbo says).
	Dubbo
)

func (p Proto) String() string {
	switch p {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP11:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	case Dubbo:
		return "dubbo"
	}
	return "unknown"
}

// Request is one request as every codec and filter sees it.
type Request struct {
	// Method is the request method; codecs intern the standard methods so
	// that parsing them does not allocate.
	Method string
	// Scheme is ":scheme" ("http" or "https"); HTTP/1 codecs set "http".
	Scheme string
	// Authority is ":authority", or HTTP/1's Host.
	Authority []byte
	// Path is ":path": path and query as received.
	Path []byte
	// Protocol is the ":protocol" of an extended CONNECT (RFC 8441), or
	// the token of an HTTP/1 Upgrade request (e.g. "websocket"); empty
	// otherwise.
	Protocol string

	// Header holds the regular fields: no pseudo-headers, no Host, and no
	// connection-specific fields (Connection, Keep-Alive, Proxy-Connection,
	// Transfer-Encoding, Upgrade), which codecs consume. "te: trailers"
	// is kept.
	Header Header
	// Trailer is filled by the codec when Body returns io.EOF.
	Trailer Header

	// Body streams the request body; nil when there is none. It returns
	// io.EOF at the end, after Trailer is filled.
	Body io.Reader
	// ContentLength is the body's length when known in advance, else -1.
	// 0 with a nil Body means no body.
	ContentLength int64

	// Proto is the protocol the request arrived on.
	Proto Proto

	// pathBuf and authorityBuf back Path and Authority after SetPath and
	// SetAuthority; they belong to r and are reused across Reset.
	pathBuf, authorityBuf []byte
}

// SetPath makes Path a copy of p held in storage that r owns and reuses
// across Reset, so that rewriting a path allocates nothing in steady state.
// p may alias Path. Use it rather than assigning Path a slice that r does
// not own: codecs reuse Path's backing array for the next request.
func (r *Request) SetPath(p []byte) {
	r.pathBuf = append(r.pathBuf[:0], p...)
	r.Path = r.pathBuf
}

// SetAuthority is SetPath for Authority.
func (r *Request) SetAuthority(a []byte) {
	r.authorityBuf = append(r.authorityBuf[:0], a...)
	r.Authority = r.authorityBuf
}

// Reset empties r for reuse, keeping header storage.
func (r *Request) Reset() {
	r.Method, r.Scheme, r.Protocol = "", "", ""
	r.Authority, r.Path = r.Authority[:0], r.Path[:0]
	r.Header.Reset()
	r.Trailer.Reset()
	r.Body = nil
	r.ContentLength = 0
	r.Proto = ProtoUnknown
}

// PathOnly returns Path without its query string.
func (r *Request) PathOnly() []byte {
	for i, c := range r.Path {
		if c == '?' {
			return r.Path[:i]
		}
	}
	return r.Path
}

// Query returns the query string of Path (without '?'), or nil.
func (r *Request) Query() []byte {
	for i, c := range r.Path {
		if c == '?' {
			return r.Path[i+1:]
		}
	}
	return nil
}

// Response is one response as every codec and filter sees it.
type Response struct {
	// Status is the HTTP status; for gRPC always 200, with grpc-status in
	// Trailer (or in Header for a trailers-only response).
	Status int
	// Header holds the regular fields, no pseudo-headers and no
	// connection-specific fields.
	Header Header
	// Trailer is filled by the codec when Body returns io.EOF.
	Trailer Header
	// Body streams the response body; nil when there is none.
	Body io.Reader
	// ContentLength is the body's length when known in advance, else -1.
	ContentLength int64
	// Proto is the protocol the response arrived on.
	Proto Proto
}

// Reset empties r for reuse, keeping header storage.
func (r *Response) Reset() {
	r.Status = 0
	r.Header.Reset()
	r.Trailer.Reset()
	r.Body = nil
	r.ContentLength = 0
	r.Proto = ProtoUnknown
}

// Standard methods, interned by codecs.
const (
	MethodGet     = "GET"
	MethodHead    = "HEAD"
	MethodPost    = "POST"
	MethodPut     = "PUT"
	MethodPatch   = "PATCH"
	MethodDelete  = "DELETE"
	MethodConnect = "CONNECT"
	MethodOptions = "OPTIONS"
	MethodTrace   = "TRACE"
)

// InternMethod returns m as a string, without allocating for the standard
// methods.
func InternMethod(m []byte) string {
	switch string(m) {
	case MethodGet:
		return MethodGet
	case MethodHead:
		return MethodHead
	case MethodPost:
		return MethodPost
	case MethodPut:
		return MethodPut
	case MethodPatch:
		return MethodPatch
	case MethodDelete:
		return MethodDelete
	case MethodConnect:
		return MethodConnect
	case MethodOptions:
		return MethodOptions
	case MethodTrace:
		return MethodTrace
	}
	return string(m)
}

// IsGRPC reports whether a content-type is gRPC's (application/grpc, or
// application/grpc+proto and the like).
func IsGRPC(contentType []byte) bool {
	const ct = "application/grpc"
	if len(contentType) < len(ct) || string(contentType[:len(ct)]) != ct {
		return false
	}
	return len(contentType) == len(ct) || contentType[len(ct)] == '+' || contentType[len(ct)] == ';'
}

package http1

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestWriteRequest(t *testing.T) {
	withTrailer := func(r *l7.Request) *l7.Request {
		r.Trailer.Add("grpc-status", "0")
		return r
	}
	tests := []struct {
		name string
		req  *l7.Request
		wire string
	}{{
		name: "GET with fields, connection-specific ones dropped",
		req: func() *l7.Request {
			r := &l7.Request{Method: "GET", Authority: []byte("a:8080"), Path: []byte("/p?q")}
			r.Header.Add("accept", "*/*")
			r.Header.Add("connection", "close")
			r.Header.Add("host", "evil")
			r.Header.Add("content-length", "7")
			r.Header.Add("te", "trailers")
			return r
		}(),
		wire: "GET /p?q HTTP/1.1\r\nhost: a:8080\r\naccept: */*\r\nte: trailers\r\n\r\n",
	}, {
		name: "POST without a body",
		req:  &l7.Request{Method: "POST", Authority: []byte("a"), Path: []byte("/")},
		wire: "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n",
	}, {
		name: "content-length body",
		req:  &l7.Request{Method: "PUT", Authority: []byte("a"), Path: []byte("/"), ContentLength: 3, Body: strings.NewReader("abc")},
		wire: "PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc",
	}, {
		name: "chunked body with trailers",
		req: withTrailer(&l7.Request{Method: "POST", Authority: []byte("a"), Path: []byte("/s.S/M"),
			ContentLength: -1, Body: io.MultiReader(strings.NewReader("hello"), strings.NewReader(" world!"))}),
		wire: "POST /s.S/M HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n world!\r\n0\r\ngrpc-status: 0\r\n\r\n",
	}, {
		name: "empty path, OPTIONS",
		req:  &l7.Request{Method: "OPTIONS", Authority: []byte("a")},
		wire: "OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n",
	}, {
		name: "empty path",
		req:  &l7.Request{Method: "GET", Authority: []byte("a")},
		wire: "GET / HTTP/1.1\r\nhost: a\r\n\r\n",
	}, {
		name: "CONNECT",
		req:  &l7.Request{Method: "CONNECT", Authority: []byte("a:443")},
		wire: "CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n",
	}, {
		name: "extended CONNECT becomes an upgrade",
		req:  &l7.Request{Method: "CONNECT", Protocol: "websocket", Authority: []byte("a"), Path: []byte("/chat")},
		wire: "GET /chat HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
	}, {
		name: "upgrade",
		req:  &l7.Request{Method: "GET", Protocol: "websocket", Authority: []byte("a"), Path: []byte("/")},
		wire: "GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe("")
			c := NewClientConn(p, ClientConfig{WriteBufferSize: 512})
			if err := c.WriteRequest(tt.req); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wire, p.out.String()); diff != "" {
				t.Errorf("wire (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteRequestRefused(t *testing.T) {
	tests := []struct {
		name string
		req  *l7.Request
	}{
		{"CRLF in a value", func() *l7.Request {
			r := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
			r.Header.Add("x-a", "1\r\nx-b: 2")
			return r
		}()},
		{"space in the name", func() *l7.Request {
			r := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
			r.Header.Add("x a", "1")
			return r
		}()},
		{"space in the path", &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/a b")}},
		{"path not origin-form", &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("a")}},
		{"space in the method", &l7.Request{Method: "G T", Authority: []byte("a"), Path: []byte("/")}},
		{"CRLF in the authority", &l7.Request{Method: "GET", Authority: []byte("a\r\nx: y"), Path: []byte("/")}},
		{"CONNECT without port", &l7.Request{Method: "CONNECT", Authority: []byte("a")}},
		{"length without body", &l7.Request{Method: "POST", Authority: []byte("a"), Path: []byte("/"), ContentLength: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe("")
			c := NewClientConn(p, ClientConfig{})
			err := c.WriteRequest(tt.req)
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != 400 {
				t.Fatalf("error %v, want an *Error with status 400", err)
			}
			if p.out.Len() != 0 {
				t.Errorf("wrote %q", p.out.String())
			}
		})
	}
}

func TestReadResponse(t *testing.T) {
	get := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
	tests := []struct {
		name     string
		req      *l7.Request
		in       string
		want     model
		reusable bool
	}{{
		name: "content-length",
		in:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello",
		want: model{Status: 200, Proto: l7.HTTP11, ContentLength: 5, HasBody: true, Body: "hello",
			Header: []string{"content-type: text/plain"}},
		reusable: true,
	}, {
		name: "chunked with trailers, interim responses skipped, no reason phrase",
		in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
			"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 0\r\n\r\n",
		want: model{Status: 200, Proto: l7.HTTP11, ContentLength: -1, HasBody: true, Body: "abc",
			Header: []string{"trailer: Grpc-Status"}, Trailer: []string{"grpc-status: 0"}},
		reusable: true,
	}, {
		name: "close-delimited",
		in:   "HTTP/1.1 200 OK\r\n\r\nuntil the end",
		want: model{Status: 200, Proto: l7.HTTP11, ContentLength: -1, HasBody: true, Body: "until the end"},
	}, {
		name:     "HTTP/1.0 keep-alive",
		in:       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		want:     model{Status: 200, Proto: l7.HTTP10, ContentLength: 1, HasBody: true, Body: "x"},
		reusable: true,
	}, {
		name: "HTTP/1.0 closes",
		in:   "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
		want: model{Status: 200, Proto: l7.HTTP10, ContentLength: 1, HasBody: true, Body: "x"},
	}, {
		name: "connection close",
		in:   "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		want: model{Status: 200, Proto: l7.HTTP11},
	}, {
		name:     "HEAD keeps its content-length, no body",
		req:      &l7.Request{Method: "HEAD", Authority: []byte("a"), Path: []byte("/")},
		in:       "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		want:     model{Status: 200, Proto: l7.HTTP11, ContentLength: 1000},
		reusable: true,
	}, {
		name:     "204 and 304 have no body",
		in:       "HTTP/1.1 204 No Content\r\n\r\n",
		want:     model{Status: 204, Proto: l7.HTTP11},
		reusable: true,
	}, {
		name:     "304",
		in:       "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
		want:     model{Status: 304, Proto: l7.HTTP11, ContentLength: -1, Header: []string{"etag: x"}},
		reusable: true,
	}, {
		name: "101",
		req:  &l7.Request{Method: "GET", Protocol: "websocket", Authority: []byte("a"), Path: []byte("/")},
		in:   "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n",
		want: model{Status: 101, Proto: l7.HTTP11, Header: []string{"sec-websocket-accept: x"}},
	}}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/one byte at a time"
			}
			t.Run(name, func(t *testing.T) {
				req := tt.req
				if req == nil {
					req = get
				}
				p := newPipe(tt.in)
				if split {
					p.in = oneByte{strings.NewReader(tt.in)}
				}
				c := NewClientConn(p, ClientConfig{})
				if err := c.WriteRequest(req); err != nil {
					t.Fatal(err)
				}
				var resp l7.Response
				if err := c.ReadResponse(req, &resp); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, responseModel(t, &resp)); diff != "" {
					t.Errorf("response (-want +got):\n%s", diff)
				}
				if got := c.Reusable(); got != tt.reusable {
					t.Errorf("Reusable() = %v, want %v", got, tt.reusable)
				}
			})
		}
	}
}

func TestReadResponseMalformed(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		inBody bool
		req    *l7.Request
	}{
		{name: "content-length and transfer-encoding", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "differing content-lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
		{name: "invalid content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"},
		{name: "gzip transfer-coding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{name: "transfer-encoding not chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{name: "transfer-encoding in HTTP/1.0", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "HTTP/2 status line", in: "HTTP/2.0 200 OK\r\n\r\n"},
		{name: "short status", in: "HTTP/1.1 20 OK\r\n\r\n"},
		{name: "status without space", in: "HTTP/1.1 200OK\r\n\r\n"},
		{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
		{name: "too many interim responses", in: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", maxInterim+1) + "HTTP/1.1 200 OK\r\n\r\n"},
		{name: "unsolicited 101", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"},
		{name: "head over the limit", in: "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 300) + "\r\n\r\n"},
		{name: "invalid chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", inBody: true},
		{name: "truncated body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", inBody: true},
		{name: "truncated chunked body", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", inBody: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
			c := NewClientConn(newPipe(tt.in), ClientConfig{Limits: Limits{MaxHeaderBytes: 256}})
			if err := c.WriteRequest(req); err != nil {
				t.Fatal(err)
			}
			var resp l7.Response
			err := c.ReadResponse(req, &resp)
			if tt.inBody {
				if err != nil {
					t.Fatalf("ReadResponse: %v, want the error from the body", err)
				}
				_, err = io.ReadAll(resp.Body)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if e, ok := errors.AsType[*Error](err); ok && e.Status != 502 {
				t.Errorf("status %d, want 502", e.Status)
			}
			if _, ok := errors.AsType[*Error](err); !ok && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v is neither an *Error nor an unexpected EOF", err)
			}
			if c.Reusable() {
				t.Error("Reusable() after an error")
			}
		})
	}
}

func TestClientSequence(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
	c := NewClientConn(newPipe(in), ClientConfig{})
	req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
	var resp l7.Response
	if err := c.ReadResponse(req, &resp); err != errRequestUnsent {
		t.Errorf("ReadResponse before WriteRequest: %v", err)
	}
	if err := c.WriteRequest(req); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadResponse(req, &resp); err != nil {
		t.Fatal(err)
	}
	if c.Reusable() {
		t.Error("Reusable with the body unread")
	}
	if err := c.WriteRequest(req); err != errNotReusable {
		t.Errorf("WriteRequest with the body unread: %v", err)
	}
	if m := responseModel(t, &resp); m.Body != "a" {
		t.Errorf("body %q", m.Body)
	}
	if err := c.WriteRequest(req); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadResponse(req, &resp); err != nil {
		t.Fatal(err)
	}
	if m := responseModel(t, &resp); m.Body != "b" {
		t.Errorf("body %q", m.Body)
	}
	if !c.Reusable() {
		t.Error("not reusable after two complete exchanges")
	}
}

// failing is a stream whose reads give in, then err; whose writes fail
// with werr when it is set.
type failing struct {
	in   io.Reader
	err  error
	werr error
}

func (f *failing) Read(b []byte) (int, error) {
	n, err := f.in.Read(b)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func (f *failing) Write(b []byte) (int, error) {
	if f.werr != nil {
		return 0, f.werr
	}
	return len(b), nil
}

// A stream that fails or ends under an exchange is a *ConnError, which
// says whether any of the response had come; a malformed response or a
// request body that fails to read is not.
func TestClientConnError(t *testing.T) {
	reset := errors.New("connection reset by peer")
	bodyErr := errors.New("downstream gone")
	tests := []struct {
		name       string
		in         string
		readErr    error // after in; io.EOF: the stream ends
		writeErr   error
		body       io.Reader
		conn       bool // a *ConnError
		noResponse bool
	}{
		{name: "EOF before any byte", readErr: io.EOF, conn: true, noResponse: true},
		{name: "reset before any byte", readErr: reset, conn: true, noResponse: true},
		{name: "EOF mid-head", in: "HTTP/1.1 200 OK\r\nContent-Le", readErr: io.EOF, conn: true},
		{name: "reset mid-head", in: "HTTP/1.1 2", readErr: reset, conn: true},
		{name: "EOF after an interim response", in: "HTTP/1.1 100 Continue\r\n\r\n", readErr: io.EOF, conn: true},
		{name: "write fails", writeErr: reset, conn: true, noResponse: true},
		{name: "request body fails to read", body: iotestErrReader{bodyErr}},
		{name: "malformed response", in: "HTTP/1.1 20 OK\r\n\r\n", readErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/"), ContentLength: -1}
			if tt.body != nil {
				req.Method, req.Body = "POST", tt.body
			}
			c := NewClientConn(&failing{in: strings.NewReader(tt.in), err: tt.readErr, werr: tt.writeErr}, ClientConfig{})
			err := c.WriteRequest(req)
			if err == nil {
				var resp l7.Response
				err = c.ReadResponse(req, &resp)
			}
			if err == nil {
				t.Fatal("no error")
			}
			ce, ok := errors.AsType[*ConnError](err)
			if ok != tt.conn {
				t.Fatalf("error %v (%T): *ConnError %v, want %v", err, err, ok, tt.conn)
			}
			if ok && ce.NoResponse != tt.noResponse {
				t.Errorf("NoResponse %v, want %v", ce.NoResponse, tt.noResponse)
			}
			if tt.readErr == reset && !errors.Is(err, reset) {
				t.Errorf("error %v does not wrap the stream's", err)
			}
			if c.Reusable() {
				t.Error("Reusable() after an error")
			}
		})
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

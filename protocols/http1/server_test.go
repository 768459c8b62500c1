package http1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestReadRequestMalformed(t *testing.T) {
	const h = "Host: a\r\n"
	long := strings.Repeat("a", 300)
	many := strings.Repeat("x-a: 1\r\n", 11)
	tests := []struct {
		name   string
		in     string
		status int
		inBody bool // refused while reading the body, not the head
	}{
		// Framing.
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false},
		{"transfer-encoding then content-length", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, false},
		{"differing content-length fields", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, false},
		{"differing content-length list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3, 4\r\n\r\n", 400, false},
		{"content-length with plus sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +3\r\n\r\n", 400, false},
		{"negative content-length", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", 400, false},
		{"content-length with inner space", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1 2\r\n\r\n", 400, false},
		{"content-length not digits", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x10\r\n\r\n", 400, false},
		{"content-length empty", "POST / HTTP/1.1\r\n" + h + "Content-Length: \r\n\r\n", 400, false},
		{"content-length overflow", "POST / HTTP/1.1\r\n" + h + "Content-Length: 9223372036854775808\r\n\r\n", 400, false},
		{"transfer-encoding not ending in chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, false},
		{"transfer-encoding gzip only", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", 400, false},
		{"chunked twice in one field", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, false},
		{"chunked twice in two fields", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false},
		{"transfer-encoding empty", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \r\n\r\n", 400, false},
		{"unknown transfer-coding", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: foo, chunked\r\n\r\n", 501, false},
		{"gzip before chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, false},
		{"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false},
		{"CONNECT with a body", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 2\r\n\r\nab", 400, false},

		// Chunked bodies.
		{"invalid chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, true},
		{"empty chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n\r\n", 400, true},
		{"negative chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400, true},
		{"chunk size overflow", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400, true},
		{"chunk size with trailing space", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400, true},
		{"chunk data without CRLF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400, true},
		{"chunk data with LF only", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400, true},
		{"chunk size line with bare LF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, true},
		{"chunk extension over the bound", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;x=" + strings.Repeat("y", maxChunkLine) + "\r\nabc\r\n0\r\n\r\n", 400, true},
		{"chunk extension with a control", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;x\x01\r\nabc\r\n0\r\n\r\n", 400, true},
		{"trailer with obs-fold", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n 2\r\n\r\n", 400, true},
		{"trailer with bare LF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nx-t: 1\n\r\n", 400, true},

		// Lines and characters.
		{"obs-fold", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n", 400, false},
		{"obs-fold with a tab", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n\t2\r\n\r\n", 400, false},
		{"whitespace before the first field", "GET / HTTP/1.1\r\n " + h + "\r\n", 400, false},
		{"bare LF ends a field line", "GET / HTTP/1.1\r\n" + h + "X-A: 1\n\r\n", 400, false},
		{"bare LF ends the request line", "GET / HTTP/1.1\n" + h + "\r\n", 400, false},
		{"bare LF ends the head", "GET / HTTP/1.1\r\n" + h + "\n", 400, false},
		{"bare CR in a value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r2\r\n\r\n", 400, false},
		{"bare CR in the request line", "GET /\r HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"bare CR after the version", "GET / HTTP/1.1\r\r\n" + h + "\r\n", 400, false},
		{"space before colon", "GET / HTTP/1.1\r\n" + h + "X-A : 1\r\n\r\n", 400, false},
		{"tab before colon", "GET / HTTP/1.1\r\n" + h + "X-A\t: 1\r\n\r\n", 400, false},
		{"field line without colon", "GET / HTTP/1.1\r\n" + h + "X-A\r\n\r\n", 400, false},
		{"empty field name", "GET / HTTP/1.1\r\n" + h + ": 1\r\n\r\n", 400, false},
		{"non-tchar in a field name", "GET / HTTP/1.1\r\n" + h + "X@A: 1\r\n\r\n", 400, false},
		{"NUL in a value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x002\r\n\r\n", 400, false},
		{"DEL in a value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x7f\r\n\r\n", 400, false},
		{"control in a long value", "GET / HTTP/1.1\r\n" + h + "X-A: 0123456789abcdef\x1b0123456789\r\n\r\n", 400, false},
		{"non-tchar in the method", "G(T / HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"empty method", " / HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"two spaces in the request line", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"no version", "GET /\r\n" + h + "\r\n", 400, false},
		{"tab in the target", "GET /a\tb HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"space in the target", "GET /a b HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"fragment in the target", "GET /a#b HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"non-ASCII in the target", "GET /\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"too many empty lines first", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" + h + "\r\n", 400, false},

		// Host and target.
		{"no host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, false},
		{"host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, false},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, false},
		{"absolute-form disagrees with host", "GET http://b/ HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"absolute-form with userinfo", "GET http://u@a/ HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"absolute-form with another scheme", "GET ftp://a/ HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"asterisk-form for GET", "GET * HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"CONNECT without port", "CONNECT a HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"CONNECT to a path", "CONNECT /a HTTP/1.1\r\n" + h + "\r\n", 400, false},
		{"invalid upgrade", "GET / HTTP/1.1\r\n" + h + "Connection: upgrade\r\nUpgrade: web(socket\r\n\r\n", 400, false},

		// Versions.
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", 505, false},
		{"HTTP/1.2", "GET / HTTP/1.2\r\n" + h + "\r\n", 505, false},
		{"HTTP/0.9 style", "GET /\r\n\r\n", 400, false},
		{"lower-case version", "GET / http/1.1\r\n" + h + "\r\n", 400, false},
		{"version with extra", "GET / HTTP/1.10\r\n" + h + "\r\n", 400, false},

		// Limits (MaxHeaderBytes 256, MaxHeaders 10 in this test).
		{"header section too large", "GET / HTTP/1.1\r\n" + h + "X-A: " + long + "\r\n\r\n", 431, false},
		{"too many fields", "GET / HTTP/1.1\r\n" + h + many + "\r\n", 431, false},
		{"request line too long", "GET /" + long + " HTTP/1.1\r\n" + h + "\r\n", 414, false},
		{"trailer section too large", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nx-t: " + long + "\r\n\r\n", 431, true},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/one byte at a time"
			}
			t.Run(name, func(t *testing.T) {
				p := newPipe(tt.in)
				if split {
					p.in = oneByte{strings.NewReader(tt.in)}
				}
				c := NewServerConn(p, ServerConfig{Limits: Limits{MaxHeaderBytes: 256, MaxHeaders: 10}})
				var req l7.Request
				err := c.ReadRequest(&req)
				if tt.inBody {
					if err != nil {
						t.Fatalf("ReadRequest: %v, want the error from the body", err)
					}
					if req.Body == nil {
						t.Fatal("no body")
					}
					_, err = io.ReadAll(req.Body)
				}
				e, ok := errors.AsType[*Error](err)
				if !ok {
					t.Fatalf("error %v, want an *Error with status %d", err, tt.status)
				}
				if e.Status != tt.status {
					t.Errorf("status %d (%s), want %d", e.Status, e.Reason, tt.status)
				}
				if c.KeepAlive() {
					t.Error("KeepAlive() true after an error")
				}
				if err := c.ReadRequest(&req); err == nil {
					t.Error("ReadRequest after an error succeeded")
				}
			})
		}
	}
}

// exchange is one request the server reads and the response it writes.
type exchange struct {
	want      model
	keepAlive bool
	resp      *l7.Response
	wire      string // the whole output after the response, if set
}

type goodCase struct {
	name      string
	in        string
	exchanges []exchange
}

// goodCases returns the cases of TestReadRequestGood, with fresh response
// bodies each time.
func goodCases() []goodCase {
	get := func(path string) model {
		return model{Method: "GET", Scheme: "http", Authority: "a", Path: path, Proto: l7.HTTP11}
	}
	return []goodCase{{
		name: "fields lower-cased, trimmed, connection-specific ones consumed",
		in: "GET /p?q=1 HTTP/1.1\r\nHost: a\r\nUser-Agent:  t/1 \r\nAccept:\t*/*\t\r\nX-Empty:\r\n" +
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\n" +
			"TE: trailers\r\nX-Dup: 1\r\nX-Dup: 2\r\nUpgrade: foo\r\n\r\n",
		exchanges: []exchange{{
			want: model{Method: "GET", Scheme: "http", Authority: "a", Path: "/p?q=1", Proto: l7.HTTP11,
				Header: []string{"user-agent: t/1", "accept: */*", "x-empty: ", "te: trailers", "x-dup: 1", "x-dup: 2"}},
			keepAlive: true, resp: okResponse("hi"),
			wire: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
		}},
	}, {
		name: "te other than trailers dropped, expect other than 100-continue kept",
		in:   "GET / HTTP/1.1\r\nHost: a\r\nTE: gzip, trailers\r\nExpect: foo\r\n\r\n",
		exchanges: []exchange{{
			want:      model{Method: "GET", Scheme: "http", Authority: "a", Path: "/", Proto: l7.HTTP11, Header: []string{"expect: foo"}},
			keepAlive: true, resp: okResponse(""),
		}},
	}, {
		name: "pipelined requests, leading CRLF, identical content-lengths coalesced",
		in: "\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
			"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello" +
			"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		exchanges: []exchange{
			{want: get("/1"), keepAlive: true, resp: okResponse("1")},
			{want: model{Method: "POST", Scheme: "http", Authority: "a", Path: "/2", Proto: l7.HTTP11,
				ContentLength: 5, HasBody: true, Body: "hello"}, keepAlive: true, resp: okResponse("2")},
			{want: get("/3"), keepAlive: false, resp: okResponse("3"),
				wire: "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1" +
					"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n2" +
					"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n3"},
		},
	}, {
		name: "HTTP/1.0 closes, chunked response becomes close-delimited",
		in:   "GET / HTTP/1.0\r\n\r\n",
		exchanges: []exchange{{
			want:      model{Method: "GET", Scheme: "http", Path: "/", Proto: l7.HTTP10},
			keepAlive: false, resp: &l7.Response{Status: 200, ContentLength: -1, Body: strings.NewReader("abc")},
			wire: "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc",
		}},
	}, {
		name: "HTTP/1.0 keep-alive",
		in:   "GET /x HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\nGET /y HTTP/1.0\r\nHost: a\r\n\r\n",
		exchanges: []exchange{
			{want: model{Method: "GET", Scheme: "http", Authority: "a", Path: "/x", Proto: l7.HTTP10},
				keepAlive: true, resp: okResponse("x"),
				wire: "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\nx"},
			{want: model{Method: "GET", Scheme: "http", Authority: "a", Path: "/y", Proto: l7.HTTP10},
				keepAlive: false, resp: okResponse("y")},
		},
	}, {
		name: "chunked with extensions and trailers, chunked response with trailers",
		in: "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nTrailer: x-sum\r\n\r\n" +
			"5;name=\"v a\"\r\nhello\r\n006 ; x\r\n world\r\n0\r\nX-Sum: 42\r\nContent-Length: 9\r\n\r\n",
		exchanges: []exchange{{
			want: model{Method: "POST", Scheme: "http", Authority: "a", Path: "/up", Proto: l7.HTTP11,
				Header: []string{"trailer: x-sum"}, ContentLength: -1, HasBody: true, Body: "hello world",
				Trailer: []string{"x-sum: 42"}},
			keepAlive: true,
			resp: func() *l7.Response {
				r := &l7.Response{Status: 200, ContentLength: -1, Body: strings.NewReader("ok")}
				r.Trailer.Add("x-t", "1")
				return r
			}(),
			wire: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n",
		}},
	}, {
		name: "absolute-form",
		in: "GET HTTP://A/p?q HTTP/1.1\r\nHost: a\r\n\r\nGET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n" +
			"OPTIONS http://a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n",
		exchanges: []exchange{
			{want: model{Method: "GET", Scheme: "http", Authority: "A", Path: "/p?q", Proto: l7.HTTP11}, keepAlive: true, resp: okResponse("")},
			{want: get("/?q"), keepAlive: true, resp: okResponse("")},
			{want: model{Method: "OPTIONS", Scheme: "http", Authority: "a:80", Path: "*", Proto: l7.HTTP11}, keepAlive: true, resp: okResponse("")},
		},
	}, {
		name: "asterisk-form and CONNECT",
		in:   "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nCONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		exchanges: []exchange{
			{want: model{Method: "OPTIONS", Scheme: "http", Authority: "a", Path: "*", Proto: l7.HTTP11}, keepAlive: true, resp: okResponse("")},
			{want: model{Method: "CONNECT", Scheme: "http", Authority: "a:443", Proto: l7.HTTP11}, keepAlive: false,
				resp: &l7.Response{Status: 200},
				wire: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"},
		},
	}, {
		name: "HEAD, 204 and 304 have no body",
		in:   "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		exchanges: []exchange{
			{want: model{Method: "HEAD", Scheme: "http", Authority: "a", Path: "/", Proto: l7.HTTP11}, keepAlive: true,
				resp: &l7.Response{Status: 200, ContentLength: 10}},
			{want: get("/"), keepAlive: true, resp: &l7.Response{Status: 204, ContentLength: -1}},
			{want: get("/"), keepAlive: true, resp: &l7.Response{Status: 304, ContentLength: -1},
				wire: "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"},
		},
	}, {
		name: "response fields: hop-by-hop dropped",
		in:   "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		exchanges: []exchange{{
			want: get("/"), keepAlive: true,
			resp: func() *l7.Response {
				r := okResponse("x")
				r.Header.Add("content-type", "text/plain")
				r.Header.Add("content-length", "99")
				r.Header.Add("transfer-encoding", "chunked")
				r.Header.Add("connection", "close")
				return r
			}(),
			wire: "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1\r\n\r\nx",
		}},
	}}
}

func TestReadRequestGood(t *testing.T) {
	for _, split := range []bool{false, true} {
		for _, tt := range goodCases() {
			name := tt.name
			if split {
				name += "/one byte at a time"
			}
			t.Run(name, func(t *testing.T) {
				p := newPipe(tt.in)
				if split {
					p.in = oneByte{strings.NewReader(tt.in)}
				}
				c := NewServerConn(p, ServerConfig{})
				var req l7.Request
				for i, ex := range tt.exchanges {
					if err := c.ReadRequest(&req); err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					if diff := cmp.Diff(ex.want, requestModel(t, &req)); diff != "" {
						t.Errorf("request %d (-want +got):\n%s", i, diff)
					}
					if err := c.WriteResponse(&req, ex.resp); err != nil {
						t.Fatalf("response %d: %v", i, err)
					}
					if got := c.KeepAlive(); got != ex.keepAlive {
						t.Errorf("request %d: KeepAlive() = %v, want %v", i, got, ex.keepAlive)
					}
					if ex.wire != "" {
						if diff := cmp.Diff(ex.wire, p.out.String()); diff != "" {
							t.Errorf("wire after response %d (-want +got):\n%s", i, diff)
						}
					}
				}
				if c.KeepAlive() {
					if err := c.ReadRequest(&req); err != io.EOF {
						t.Errorf("after the last request: %v, want io.EOF", err)
					}
				}
			})
		}
	}
}

func TestExpectContinue(t *testing.T) {
	const in = "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc"
	t.Run("sent on the first body read", func(t *testing.T) {
		p := newPipe(in)
		c := NewServerConn(p, ServerConfig{})
		var req l7.Request
		if err := c.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Has("expect") {
			t.Error("expect left in the model")
		}
		if p.out.Len() != 0 {
			t.Fatalf("wrote %q before the body was read", p.out.String())
		}
		buf := make([]byte, 1)
		if _, err := req.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
		if got := p.out.String(); got != "HTTP/1.1 100 Continue\r\n\r\n" {
			t.Fatalf("after the first read: %q", got)
		}
		if _, err := io.ReadAll(req.Body); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteResponse(&req, okResponse("")); err != nil {
			t.Fatal(err)
		}
		want := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
		if got := p.out.String(); got != want {
			t.Errorf("wire %q, want %q", got, want)
		}
		if !c.KeepAlive() {
			t.Error("not kept alive")
		}
	})
	t.Run("never sent when answered first", func(t *testing.T) {
		p := newPipe(in)
		c := NewServerConn(p, ServerConfig{})
		var req l7.Request
		if err := c.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteResponse(&req, &l7.Response{Status: 403}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(req.Body); err != nil {
			t.Fatal(err)
		}
		want := "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
		if got := p.out.String(); got != want {
			t.Errorf("wire %q, want %q", got, want)
		}
		if c.KeepAlive() {
			t.Error("kept alive with the body unread at response time")
		}
	})
}

func TestUpgrade(t *testing.T) {
	in := "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: k\r\n\r\nraw bytes"
	p := newPipe(in)
	c := NewServerConn(p, ServerConfig{})
	var req l7.Request
	if err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	want := model{Method: "GET", Scheme: "http", Authority: "a", Path: "/chat", Protocol: "websocket",
		Proto: l7.HTTP11, Header: []string{"sec-websocket-key: k"}}
	if diff := cmp.Diff(want, requestModel(t, &req)); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	resp := &l7.Response{Status: 101}
	resp.Header.Add("sec-websocket-accept", "x")
	if err := c.WriteResponse(&req, resp); err != nil {
		t.Fatal(err)
	}
	wantWire := "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
	if got := p.out.String(); got != wantWire {
		t.Errorf("wire %q, want %q", got, wantWire)
	}
	if c.KeepAlive() {
		t.Error("KeepAlive after 101")
	}
	rw, buffered := c.Hijack()
	rest, _ := io.ReadAll(rw)
	if got := string(buffered) + string(rest); got != "raw bytes" {
		t.Errorf("hijacked bytes %q", got)
	}

	t.Run("h2c and HTTP/1.0 upgrades ignored", func(t *testing.T) {
		for _, in := range []string{
			"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n",
			"GET / HTTP/1.0\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		} {
			c := NewServerConn(newPipe(in), ServerConfig{})
			var req l7.Request
			if err := c.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
			if req.Protocol != "" || req.Header.Len() != 0 {
				t.Errorf("%q: protocol %q, header %v", in, req.Protocol, fieldList(&req.Header))
			}
		}
	})
}

func TestWriteError(t *testing.T) {
	p := newPipe("GET / HTTP/1.1\r\n\r\n")
	c := NewServerConn(p, ServerConfig{})
	var req l7.Request
	err := c.ReadRequest(&req)
	if err == nil {
		t.Fatal("no error for a request without host")
	}
	if err := c.WriteError(err); err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request"
	if got := p.out.String(); got != want {
		t.Errorf("wire %q, want %q", got, want)
	}
}

func TestServerMisuse(t *testing.T) {
	p := newPipe("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c := NewServerConn(p, ServerConfig{})
	var req l7.Request
	if err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadRequest(&req); err != errResponseOwed {
		t.Errorf("second ReadRequest before the response: %v", err)
	}
	resp := okResponse("x")
	resp.Header.Add("x-bad", "a\r\nb")
	if err := c.WriteResponse(&req, resp); err == nil {
		t.Fatal("a value with CRLF was written")
	}
	if p.out.Len() != 0 {
		t.Errorf("a refused response left %q on the wire", p.out.String())
	}
	if err := c.WriteResponse(&req, &l7.Response{Status: 200, ContentLength: 5}); err == nil {
		t.Error("content-length without a body accepted")
	}
	if err := c.WriteResponse(&req, &l7.Response{Status: 200, ContentLength: 5, Body: strings.NewReader("ab")}); err == nil {
		t.Error("a body shorter than its content-length accepted")
	}
	if c.KeepAlive() {
		t.Error("kept alive after a short body")
	}
}

// failingPipe reads in, then fails every read with err; writes collect in
// out.
type failingPipe struct {
	in  io.Reader
	err error
	out bytes.Buffer
}

func (p *failingPipe) Read(b []byte) (int, error) {
	n, err := p.in.Read(b)
	if err == io.EOF {
		err = p.err
	}
	return n, err
}

func (p *failingPipe) Write(b []byte) (int, error) { return p.out.Write(b) }

// TestResponseAfterBodyReadDeadline: a request body read that fails on
// the stream's read deadline (the caller stopped it) leaves the response
// writable, as the connection's last; any other failure of the stream
// does not.
func TestResponseAfterBodyReadDeadline(t *testing.T) {
	const in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"
	cases := []struct {
		name     string
		err      error
		writable bool
	}{
		{"read deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), true},
		{"connection reset", syscall.ECONNRESET, false},
		{"peer closed", io.EOF, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &failingPipe{in: strings.NewReader(in), err: tc.err}
			c := NewServerConn(p, ServerConfig{})
			var req l7.Request
			if err := c.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(req.Body); err == nil {
				t.Fatal("the body read did not fail")
			}
			err := c.WriteResponse(&req, &l7.Response{Status: 408})
			if !tc.writable {
				if err == nil || p.out.Len() != 0 {
					t.Fatalf("wrote %q (err %v) on a broken stream", p.out.String(), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
			if got := p.out.String(); got != want {
				t.Errorf("wire %q, want %q", got, want)
			}
			if c.KeepAlive() {
				t.Error("kept alive after a failed body read")
			}
		})
	}
}

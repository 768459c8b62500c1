package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Benchmarks measure the codec alone on in-memory streams, each beside
// net/http doing the same work on the same bytes in the same run.

// typicalGET is a browser-like GET through a mesh: 11 fields.
const typicalGET = "GET /api/v1/products/12345?include=reviews&page=2 HTTP/1.1\r\n" +
	"Host: productpage.default.svc.cluster.local:9080\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=7f3c1a9e2b4d; theme=dark\r\n" +
	"X-Request-Id: 5c8a7e1f-0b2d-4c6e-9a3f-1d2e3f4a5b6c\r\n" +
	"X-B3-Traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n" +
	"X-B3-Spanid: e457b5a2e4d86bd1\r\n" +
	"X-B3-Sampled: 1\r\n" +
	"Connection: keep-alive\r\n\r\n"

var post1K = "POST /api/v1/orders HTTP/1.1\r\nHost: orders.default.svc.cluster.local:8080\r\n" +
	"Content-Type: application/json\r\nContent-Length: 1024\r\nAccept: */*\r\nX-Request-Id: 5c8a7e1f\r\n\r\n" +
	strings.Repeat("x", 1024)

var response1K = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n" +
	"Server: istio-envoy\r\nX-Envoy-Upstream-Service-Time: 3\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("y", 1024)

// loop reads the same bytes forever: one message after another.
type loop struct {
	data []byte
	off  int
}

func (l *loop) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.data[l.off:])
		n += k
		l.off = (l.off + k) % len(l.data)
	}
	return n, nil
}

// loopConn reads from a loop and discards writes.
type loopConn struct{ loop }

func (*loopConn) Write(p []byte) (int, error) { return len(p), nil }

func newLoopConn(msg string) *loopConn { return &loopConn{loop{data: []byte(msg)}} }

func BenchmarkReadRequest(b *testing.B) {
	b.Run("http1", func(b *testing.B) {
		c := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
		var req l7.Request
		b.SetBytes(int64(len(typicalGET)))
		b.ReportAllocs()
		for b.Loop() {
			if err := c.ReadRequest(&req); err != nil {
				b.Fatal(err)
			}
			c.owed = false // no response: this measures parsing alone
		}
	})
	b.Run("net-http", func(b *testing.B) {
		br := bufio.NewReaderSize(&loop{data: []byte(typicalGET)}, DefaultBufferSize)
		b.SetBytes(int64(len(typicalGET)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkReadRequestPOST1K(b *testing.B) {
	b.Run("http1", func(b *testing.B) {
		c := NewServerConn(newLoopConn(post1K), ServerConfig{})
		var req l7.Request
		buf := make([]byte, 4096)
		src := &onlyReader{}
		b.SetBytes(int64(len(post1K)))
		b.ReportAllocs()
		for b.Loop() {
			if err := c.ReadRequest(&req); err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, src.of(req.Body), buf); err != nil {
				b.Fatal(err)
			}
			c.owed = false
		}
	})
	b.Run("net-http", func(b *testing.B) {
		br := bufio.NewReaderSize(&loop{data: []byte(post1K)}, DefaultBufferSize)
		buf := make([]byte, 4096)
		src := &onlyReader{}
		b.SetBytes(int64(len(post1K)))
		b.ReportAllocs()
		for b.Loop() {
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, src.of(req.Body), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// onlyReader hides WriterTo so that both sides copy alike; one is reused
// so that wrapping a body does not allocate.
type onlyReader struct{ io.Reader }

func (o *onlyReader) of(r io.Reader) io.Reader {
	o.Reader = r
	return o
}

func BenchmarkWriteResponse(b *testing.B) {
	body := bytes.Repeat([]byte("y"), 1024)
	b.Run("http1", func(b *testing.B) {
		c := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
		var req l7.Request
		if err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
		resp := &l7.Response{Status: 200, ContentLength: int64(len(body))}
		resp.Header.Add("content-type", "application/json")
		resp.Header.Add("date", "Mon, 01 Jan 2024 00:00:00 GMT")
		resp.Header.Add("server", "istio-envoy")
		resp.Header.Add("x-envoy-upstream-service-time", "3")
		br := bytes.NewReader(body)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			br.Reset(body)
			resp.Body = br
			c.owed, c.keepAlive = true, true // the same request answered again
			if err := c.WriteResponse(&req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, DefaultBufferSize)
		br := bytes.NewReader(body)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			br.Reset(body)
			resp := &http.Response{
				StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(len(body)),
				Header: http.Header{
					"Content-Type":                  {"application/json"},
					"Date":                          {"Mon, 01 Jan 2024 00:00:00 GMT"},
					"Server":                        {"istio-envoy"},
					"X-Envoy-Upstream-Service-Time": {"3"},
				},
				Body: io.NopCloser(br),
			}
			if err := resp.Write(bw); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
		}
	})
}

func BenchmarkWriteRequest(b *testing.B) {
	b.Run("http1", func(b *testing.B) {
		src := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
		var req l7.Request
		if err := src.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
		c := NewClientConn(newLoopConn(""), ClientConfig{})
		b.ReportAllocs()
		for b.Loop() {
			if err := c.WriteRequest(&req); err != nil {
				b.Fatal(err)
			}
			c.responses = c.requests.Load() // no response: this measures writing alone
		}
	})
	b.Run("net-http", func(b *testing.B) {
		parsed, err := http.ReadRequest(bufio.NewReader(strings.NewReader(typicalGET)))
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriterSize(io.Discard, DefaultBufferSize)
		b.ReportAllocs()
		for b.Loop() {
			if err := parsed.Write(bw); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
		}
	})
}

func BenchmarkReadResponse(b *testing.B) {
	b.Run("http1", func(b *testing.B) {
		c := NewClientConn(newLoopConn(response1K), ClientConfig{})
		req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
		var resp l7.Response
		buf := make([]byte, 4096)
		src := &onlyReader{}
		b.SetBytes(int64(len(response1K)))
		b.ReportAllocs()
		for b.Loop() {
			c.requests.Add(1) // as if WriteRequest had run
			if err := c.ReadResponse(req, &resp); err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, src.of(resp.Body), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		br := bufio.NewReaderSize(&loop{data: []byte(response1K)}, DefaultBufferSize)
		req, _ := http.NewRequest("GET", "http://a/", nil)
		buf := make([]byte, 4096)
		src := &onlyReader{}
		b.SetBytes(int64(len(response1K)))
		b.ReportAllocs()
		for b.Loop() {
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, src.of(resp.Body), buf); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

package http2

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// typicalRequest is a browser-or-SDK-like request: 12 fields.
func typicalRequest(i int) []hpack.HeaderField {
	id := strconv.Itoa(1000000 + i)
	return []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "api.example.com"},
		{Name: ":path", Value: "/v1/users/" + id + "?expand=profile"},
		{Name: "user-agent", Value: "example-sdk/1.4.2 (linux; amd64)"},
		{Name: "accept", Value: "application/json"},
		{Name: "accept-encoding", Value: "gzip, deflate, br"},
		{Name: "accept-language", Value: "en-US,en;q=0.9"},
		{Name: "content-type", Value: "application/json"},
		{Name: "x-request-id", Value: "5f2b6c1e-8a4d-4e1b-9c3a-" + id + "abcdef"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e" + id + "-00f067aa0ba902b7-01"},
		{Name: "authorization", Value: "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"},
	}
}

func encodeBlock(enc *hpack.Encoder, buf *bytes.Buffer, fields []hpack.HeaderField) []byte {
	buf.Reset()
	for _, f := range fields {
		enc.WriteField(f)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// BenchmarkHPACKToModel decodes a typical 12-field request block into an
// l7.Request (ours) and, as the reference, into []hpack.HeaderField with
// x/net's DecodeFull. "cold" is a connection's first request (literals);
// "warm" a later one (repeated fields indexed, ids and :path literal).
func BenchmarkHPACKToModel(b *testing.B) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	cold := encodeBlock(enc, &buf, typicalRequest(0))
	// The warm block must not change the table, or decoding it twice
	// would read shifted indices: its per-request fields are literals
	// without indexing, as our encoder sends them.
	second := typicalRequest(1)
	for i := range second {
		switch second[i].Name {
		case ":path", "x-request-id", "traceparent", "authorization":
			second[i].Sensitive = true
		}
	}
	warm := encodeBlock(enc, &buf, second)
	cfg, _ := Config{}.withDefaults()
	for _, tc := range []struct {
		name        string
		setup, loop []byte
	}{{"cold", nil, cold}, {"warm", cold, warm}} {
		b.Run(tc.name+"/l7", func(b *testing.B) {
			var d headerDecoder
			d.init(&cfg)
			var req l7.Request
			decode := func(block []byte) {
				req.Reset()
				d.begin(blockRequest, &req, nil, nil)
				if err := d.write(block); err != nil {
					b.Fatal(err)
				}
				if err := d.end(); err != nil || d.bad != "" || d.over {
					b.Fatal(err, d.bad, d.over)
				}
			}
			if tc.setup != nil {
				decode(tc.setup)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				decode(tc.loop)
			}
			if req.Method != "GET" || req.Header.Len() != 8 {
				b.Fatalf("decoded %s with %d fields", req.Method, req.Header.Len())
			}
		})
		b.Run(tc.name+"/xnet-reference", func(b *testing.B) {
			dec := hpack.NewDecoder(4096, nil)
			if tc.setup != nil {
				dec.DecodeFull(tc.setup)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fields, err := dec.DecodeFull(tc.loop)
				if err != nil || len(fields) != 12 {
					b.Fatal(err)
				}
			}
		})
	}
}

var payload1K = bytes.Repeat([]byte("x"), 1024)

// unaryResponse is a response the handler reuses, as a proxy reuses the
// upstream's.
type unaryResponse struct {
	resp l7.Response
	body bytes.Reader
	buf  [2048]byte
}

var unaryPool = sync.Pool{New: func() any {
	r := new(unaryResponse)
	r.resp.Header.Add("content-type", "application/octet-stream")
	return r
}}

// unaryHandler reads the request and answers 1 KiB.
var unaryHandler = HandlerFunc(func(st *ServerStream) {
	r := unaryPool.Get().(*unaryResponse)
	defer unaryPool.Put(r)
	if body := st.Request().Body; body != nil {
		for {
			if _, err := body.Read(r.buf[:]); err != nil {
				break
			}
		}
	}
	r.body.Reset(payload1K)
	r.resp.Status, r.resp.Body, r.resp.ContentLength = 200, &r.body, 1024
	st.WriteResponse(&r.resp)
})

// BenchmarkUnaryRoundTrip: our client to our server over loopback TCP,
// one connection, 1 KiB each way.
func BenchmarkUnaryRoundTrip(b *testing.B) {
	ts := startServer(b, Config{}, unaryHandler)
	cc := dialClient(b, ts.addr(), Config{})
	req := newRequest("POST", "example.com", "/unary")
	req.Header.Add("content-type", "application/octet-stream")
	var body bytes.Reader
	buf := make([]byte, 2048)
	run := func() {
		body.Reset(payload1K)
		req.Body, req.ContentLength = &body, 1024
		resp, err := cc.RoundTrip(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := resp.Body.Read(buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.(io.Closer).Close()
		if n != 1024 {
			b.Fatalf("%d bytes", n)
		}
	}
	run()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

// BenchmarkXNetUnaryRoundTrip is the reference: x/net's Transport to
// x/net's Server, h2c over loopback TCP, one connection, 1 KiB each way.
func BenchmarkXNetUnaryRoundTrip(b *testing.B) {
	addr := startXNetServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1024")
		w.Write(payload1K)
	}))
	client := xnetClient(b)
	url := "http://" + addr + "/unary"
	buf := make([]byte, 2048)
	run := func() {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(payload1K))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := resp.Body.Read(buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if n != 1024 {
			b.Fatalf("%d bytes", n)
		}
	}
	run()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

// BenchmarkUnaryRoundTripParallel is BenchmarkUnaryRoundTrip with
// concurrent callers (GOMAXPROCS × 8) sharing the one connection.
func BenchmarkUnaryRoundTripParallel(b *testing.B) {
	ts := startServer(b, Config{}, unaryHandler)
	cc := dialClient(b, ts.addr(), Config{})
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		req := newRequest("POST", "example.com", "/unary")
		req.Header.Add("content-type", "application/octet-stream")
		var body bytes.Reader
		buf := make([]byte, 2048)
		for pb.Next() {
			body.Reset(payload1K)
			req.Body, req.ContentLength = &body, 1024
			resp, err := cc.RoundTrip(context.Background(), req)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.(io.Closer).Close()
		}
	})
}

// BenchmarkXNetUnaryRoundTripParallel is the x/net reference for
// BenchmarkUnaryRoundTripParallel.
func BenchmarkXNetUnaryRoundTripParallel(b *testing.B) {
	addr := startXNetServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1024")
		w.Write(payload1K)
	}))
	client := xnetClient(b)
	url := "http://" + addr + "/unary"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 2048)
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(payload1K))
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		}
	})
}

package http2

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// seenRequest is what a handler saw of a request.
type seenRequest struct {
	Method, Scheme, Authority, Path, Protocol string
	Header                                    []string
	ContentLength                             int64
	Body                                      string
	Trailer                                   []string
}

func fieldList(h *l7.Header) []string {
	var out []string
	for _, f := range h.Fields() {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return out
}

// TestRequestValidation sends each request on stream 3 of a raw
// connection while stream 1 is in flight: a malformed one must be reset
// (PROTOCOL_ERROR) without harming stream 1; a valid one must reach the
// handler as the model says.
func TestRequestValidation(t *testing.T) {
	type frame struct {
		data    string // DATA frame (when fields is nil)
		fields  []string
		end     bool
		trailer bool // fields are a trailer block
	}
	std := []string{":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/p?q=1"}
	with := func(extra ...string) []string { return append(append([]string(nil), std...), extra...) }
	tests := []struct {
		name   string
		frames []frame
		want   *seenRequest // nil: malformed
	}{
		{"valid", []frame{{fields: with("x-a", "1", "te", "trailers"), end: true}},
			&seenRequest{Method: "POST", Scheme: "https", Authority: "example.com", Path: "/p?q=1", Header: []string{"x-a: 1", "te: trailers"}}},
		{"valid body and trailers", []frame{{fields: with("content-length", "5")}, {data: "he"}, {data: "llo"}, {fields: []string{"x-t", "v"}, trailer: true, end: true}},
			&seenRequest{Method: "POST", Scheme: "https", Authority: "example.com", Path: "/p?q=1", Header: []string{"content-length: 5"}, ContentLength: 5, Body: "hello", Trailer: []string{"x-t: v"}}},
		{"host becomes authority", []frame{{fields: []string{":method", "GET", ":scheme", "http", ":path", "/", "host", "h.example"}, end: true}},
			&seenRequest{Method: "GET", Scheme: "http", Authority: "h.example", Path: "/"}},
		{"cookies joined", []frame{{fields: with("cookie", "a=1", "x-b", "2", "cookie", "c=3"), end: true}},
			&seenRequest{Method: "POST", Scheme: "https", Authority: "example.com", Path: "/p?q=1", Header: []string{"x-b: 2", "cookie: a=1; c=3"}}},
		{"CONNECT", []frame{{fields: []string{":method", "CONNECT", ":authority", "10.0.0.1:443"}, end: true}},
			&seenRequest{Method: "CONNECT", Authority: "10.0.0.1:443"}},
		{"extended CONNECT", []frame{{fields: []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/ws", ":authority", "example.com"}, end: true}},
			&seenRequest{Method: "CONNECT", Scheme: "https", Authority: "example.com", Path: "/ws", Protocol: "websocket"}},
		{"OPTIONS *", []frame{{fields: []string{":method", "OPTIONS", ":scheme", "https", ":path", "*", ":authority", "a"}, end: true}},
			&seenRequest{Method: "OPTIONS", Scheme: "https", Authority: "a", Path: "*"}},

		{"upper-case name", []frame{{fields: with("X-Upper", "1"), end: true}}, nil},
		{"connection field", []frame{{fields: with("connection", "close"), end: true}}, nil},
		{"transfer-encoding", []frame{{fields: with("transfer-encoding", "chunked"), end: true}}, nil},
		{"te gzip", []frame{{fields: with("te", "gzip"), end: true}}, nil},
		{"missing :method", []frame{{fields: std[2:], end: true}}, nil},
		{"missing :path", []frame{{fields: std[:6], end: true}}, nil},
		{"empty :path", []frame{{fields: []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", ""}, end: true}}, nil},
		{"relative :path", []frame{{fields: []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "p"}, end: true}}, nil},
		{"duplicate :path", []frame{{fields: with(":path", "/again"), end: true}}, nil},
		{":status in a request", []frame{{fields: with(":status", "200"), end: true}}, nil},
		{"unknown pseudo-header", []frame{{fields: with(":foo", "bar"), end: true}}, nil},
		{"pseudo after regular", []frame{{fields: []string{":method", "GET", "x-a", "1", ":scheme", "https", ":path", "/"}, end: true}}, nil},
		{"CONNECT with :path", []frame{{fields: []string{":method", "CONNECT", ":authority", "a:1", ":path", "/"}, end: true}}, nil},
		{"CONNECT without :authority", []frame{{fields: []string{":method", "CONNECT"}, end: true}}, nil},
		{":protocol without CONNECT", []frame{{fields: with(":protocol", "websocket"), end: true}}, nil},
		{"host differs from :authority", []frame{{fields: with("host", "other.example"), end: true}}, nil},
		{"value with LF", []frame{{fields: with("x-a", "1\nx-b: 2"), end: true}}, nil},
		{"value with leading space", []frame{{fields: with("x-a", " 1"), end: true}}, nil},
		{"content-length over DATA", []frame{{fields: with("content-length", "10")}, {data: "short", end: true}}, nil},
		{"DATA over content-length", []frame{{fields: with("content-length", "2")}, {data: "toolong", end: true}}, nil},
		{"content-length without DATA", []frame{{fields: with("content-length", "2"), end: true}}, nil},
		{"two content-lengths", []frame{{fields: with("content-length", "2", "content-length", "3")}, {data: "ab", end: true}}, nil},
		{"pseudo-header in trailers", []frame{{fields: std}, {fields: []string{":path", "/x"}, trailer: true, end: true}}, nil},
		{"trailers without END_STREAM", []frame{{fields: std}, {fields: []string{"x-t", "v"}, trailer: true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan seenRequest, 4)
			s := serveOne(t, Config{}, HandlerFunc(func(st *ServerStream) {
				req := st.Request()
				if string(req.Path) == "/held" {
					okHandler(st)
					return
				}
				sr := seenRequest{Method: req.Method, Scheme: req.Scheme, Authority: string(req.Authority), Path: string(req.Path),
					Protocol: req.Protocol, Header: fieldList(&req.Header), ContentLength: req.ContentLength}
				if req.Body != nil {
					var b strings.Builder
					buf := make([]byte, 100)
					for {
						n, err := req.Body.Read(buf)
						b.Write(buf[:n])
						if err != nil {
							break
						}
					}
					sr.Body = b.String()
				}
				sr.Trailer = fieldList(&req.Trailer)
				seen <- sr
				st.WriteResponse(&l7.Response{Status: 200})
			}), false)
			c := dialRaw(t, s.addr, false)
			// Stream 1 stays open across the test request.
			c.hbuf.Reset()
			held := []string{":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/held"}
			for i := 0; i < len(held); i += 2 {
				c.enc.WriteField(hpack.HeaderField{Name: held[i], Value: held[i+1]})
			}
			c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: append([]byte(nil), c.hbuf.Bytes()...), EndHeaders: true})
			for _, f := range tt.frames {
				if f.fields == nil {
					c.fr.WriteData(3, f.end, []byte(f.data))
					continue
				}
				c.hbuf.Reset()
				for i := 0; i+1 < len(f.fields); i += 2 {
					c.enc.WriteField(hpack.HeaderField{Name: f.fields[i], Value: f.fields[i+1]})
				}
				c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, BlockFragment: append([]byte(nil), c.hbuf.Bytes()...), EndStream: f.end, EndHeaders: true})
			}
			if tt.want == nil {
				if c.readUntil(isRST(3, ErrCodeProtocol)) == nil {
					t.Fatal("no RST_STREAM(PROTOCOL_ERROR) for stream 3")
				}
			} else {
				got := <-seen
				if diff := cmp.Diff(*tt.want, got); diff != "" {
					t.Fatalf("request (-want +got):\n%s", diff)
				}
			}
			// Stream 1 is unharmed: finish it and get its response.
			c.fr.WriteData(1, true, []byte("x"))
			h := c.readUntil(func(f xhttp2.Frame) bool {
				h, ok := f.(*xhttp2.HeadersFrame)
				return ok && h.StreamID == 1
			})
			if h == nil {
				t.Fatal("stream 1 got no response")
			}
		})
	}
}

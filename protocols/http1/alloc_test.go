//go:build !race

package http1

import (
	"bytes"
	"io"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// TestZeroAllocs asserts the steady state of the hot paths allocates
// nothing (the race detector changes allocation counts, hence the build
// tag).
func TestZeroAllocs(t *testing.T) {
	body := bytes.Repeat([]byte("y"), 1024)
	buf := make([]byte, 4096)
	src := &onlyReader{}
	tests := []struct {
		name string
		run  func(t *testing.T) func()
	}{{
		name: "ReadRequest",
		run: func(t *testing.T) func() {
			c := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
			var req l7.Request
			return func() {
				if err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				c.owed = false
			}
		},
	}, {
		name: "ReadRequest with a 1 KiB body",
		run: func(t *testing.T) func() {
			c := NewServerConn(newLoopConn(post1K), ServerConfig{})
			var req l7.Request
			return func() {
				if err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, src.of(req.Body), buf); err != nil {
					t.Fatal(err)
				}
				c.owed = false
			}
		},
	}, {
		name: "WriteResponse",
		run: func(t *testing.T) func() {
			c := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
			var req l7.Request
			resp := &l7.Response{Status: 200, ContentLength: int64(len(body))}
			resp.Header.Add("content-type", "application/json")
			br := bytes.NewReader(body)
			return func() {
				if err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				br.Reset(body)
				resp.Body = br
				if err := c.WriteResponse(&req, resp); err != nil {
					t.Fatal(err)
				}
			}
		},
	}, {
		name: "WriteResponse chunked",
		run: func(t *testing.T) func() {
			c := NewServerConn(newLoopConn(typicalGET), ServerConfig{})
			var req l7.Request
			resp := &l7.Response{Status: 200, ContentLength: -1}
			resp.Trailer.Add("grpc-status", "0")
			br := bytes.NewReader(body)
			return func() {
				if err := c.ReadRequest(&req); err != nil {
					t.Fatal(err)
				}
				br.Reset(body)
				resp.Body = br
				if err := c.WriteResponse(&req, resp); err != nil {
					t.Fatal(err)
				}
			}
		},
	}, {
		name: "WriteRequest and ReadResponse",
		run: func(t *testing.T) func() {
			c := NewClientConn(newLoopConn(response1K), ClientConfig{})
			req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
			req.Header.Add("accept", "*/*")
			var resp l7.Response
			return func() {
				if err := c.WriteRequest(req); err != nil {
					t.Fatal(err)
				}
				if err := c.ReadResponse(req, &resp); err != nil {
					t.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, src.of(resp.Body), buf); err != nil {
					t.Fatal(err)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.run(t)
			f() // warm up: the header slices grow once
			if n := testing.AllocsPerRun(200, f); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
}

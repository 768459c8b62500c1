package http1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// FuzzReadRequest feeds arbitrary bytes to a ServerConn. Nothing may
// panic, every refusal is an *Error or a stream error, and every request
// that parses, once written again by a ClientConn, parses to the same
// model. The seed corpus is in testdata/fuzz/FuzzReadRequest.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := ServerConfig{Limits: Limits{MaxHeaderBytes: 2048, MaxHeaders: 24}, ReadBufferSize: 512}
		p := &pipe{in: bytes.NewReader(data)}
		c := NewServerConn(p, cfg)
		var req l7.Request
		for range 4 { // up to four pipelined requests
			err := c.ReadRequest(&req)
			if err != nil {
				if _, ok := errors.AsType[*Error](err); !ok && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadRequest: unexpected kind of error %v", err)
				}
				if c.KeepAlive() {
					t.Fatal("KeepAlive after an error")
				}
				return
			}
			first, ok := fuzzModel(&req)
			if !ok {
				return // a body the codec refused
			}
			again := reparse(t, &req, first)
			first.Proto = l7.HTTP11 // a ClientConn always writes HTTP/1.1
			if diff := cmp.Diff(first, again); diff != "" {
				t.Fatalf("written again, the request parses differently (-first +again):\n%s", diff)
			}
			if err := c.WriteResponse(&req, &l7.Response{Status: 204}); err != nil {
				t.Fatalf("WriteResponse: %v", err)
			}
			if !c.KeepAlive() {
				return
			}
		}
	})
}

// fuzzModel is requestModel that reports a refused body instead of failing.
func fuzzModel(req *l7.Request) (model, bool) {
	body := req.Body
	req.Body = nil
	m := requestModel(nil, req)
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return m, false
		}
		m.HasBody, m.Body = true, string(b)
	}
	m.Trailer = fieldList(&req.Trailer)
	return m, true
}

// reparse writes req (whose body was m.Body) with a ClientConn and reads it
// back with a fresh ServerConn of default limits.
func reparse(t *testing.T, req *l7.Request, m model) model {
	out := &l7.Request{
		Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
		Protocol: req.Protocol, ContentLength: req.ContentLength,
	}
	out.Header.CopyFrom(&req.Header)
	out.Trailer.CopyFrom(&req.Trailer)
	if m.HasBody {
		out.Body = strings.NewReader(m.Body)
	}
	wire := &pipe{in: strings.NewReader("")}
	if err := NewClientConn(wire, ClientConfig{}).WriteRequest(out); err != nil {
		t.Fatalf("WriteRequest of a parsed request: %v", err)
	}
	c := NewServerConn(&pipe{in: bytes.NewReader(wire.out.Bytes())}, ServerConfig{})
	var again l7.Request
	if err := c.ReadRequest(&again); err != nil {
		t.Fatalf("parsing %q again: %v", wire.out.String(), err)
	}
	m2, ok := fuzzModel(&again)
	if !ok {
		t.Fatalf("body of %q refused", wire.out.String())
	}
	return m2
}

// FuzzReadResponse feeds arbitrary bytes to a ClientConn: nothing may
// panic, and every refusal is a 502 *Error or a stream error.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nx: y\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewClientConn(&pipe{in: bytes.NewReader(data)}, ClientConfig{Limits: Limits{MaxHeaderBytes: 2048, MaxHeaders: 24}, ReadBufferSize: 512})
		req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/")}
		for range 3 {
			if err := c.WriteRequest(req); err != nil {
				return
			}
			var resp l7.Response
			err := c.ReadResponse(req, &resp)
			if err == nil && resp.Body != nil {
				_, err = io.ReadAll(resp.Body)
			}
			if err != nil {
				if e, ok := errors.AsType[*Error](err); ok && e.Status != 502 {
					t.Fatalf("status %d, want 502: %v", e.Status, err)
				}
				if c.Reusable() {
					t.Fatal("reusable after an error")
				}
				return
			}
			if !c.Reusable() {
				return
			}
		}
	})
}

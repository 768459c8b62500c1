package router

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// slowBody yields its bytes in chunks with a pause before each.
type slowBody struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.pause)
	n := copy(p[:min(len(p), b.chunk)], b.data)
	b.data = b.data[n:]
	return n, nil
}

const timeouts = `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /short}
    route: {cluster: backend, timeout: 0.3s}
  - match: {prefix: /none}
    route: {cluster: backend, timeout: 0s}
`

// TestRouteTimeoutFromTheEndOfTheRequest: the route timeout starts when
// the downstream request is complete, as Envoy's: an upload slower than
// the timeout succeeds, and the timeout still bounds the wait for the
// response after it.
func TestRouteTimeoutFromTheEndOfTheRequest(t *testing.T) {
	tb := table(t, timeouts)
	slowUpload := func() *l7.Request {
		r := post("/short", nil)
		data := bytes.Repeat([]byte("x"), 6000)
		r.Body = &slowBody{data: data, chunk: 1000, pause: 100 * time.Millisecond} // 0.6 s, twice the timeout
		r.ContentLength = int64(len(data))
		return r
	}
	tests := []struct {
		name     string
		req      func() *l7.Request
		respond  func(ctx context.Context) (*l7.Response, error)
		wantCode int // 0: the upstream's 200
		wantBody int
	}{
		{"slow upload, prompt answer", slowUpload, func(ctx context.Context) (*l7.Response, error) {
			if ctx.Err() != nil { // a timeout counted from the headers would have passed
				return nil, status.New(status.UpstreamReset, ctx.Err())
			}
			return respond(200), nil
		}, 0, 6000},
		{"slow upload, no answer", slowUpload, func(ctx context.Context) (*l7.Response, error) {
			<-ctx.Done() // ended by the timeout, 0.3 s after the body's end
			return nil, status.New(status.UpstreamReset, ctx.Err())
		}, 504, 6000},
		{"no body, no answer", func() *l7.Request { return get("/short") }, func(ctx context.Context) (*l7.Response, error) {
			<-ctx.Done() // the upstream applies the deadline from the headers
			return nil, status.New(status.UpstreamReset, ctx.Err())
		}, 504, 0},
		{"no route timeout", func() *l7.Request {
			r := slowUpload()
			r.Path = []byte("/none")
			return r
		}, func(ctx context.Context) (*l7.Response, error) {
			if _, ok := ctx.Deadline(); ok {
				t.Error("a deadline without a route timeout")
			}
			return respond(200), nil
		}, 0, 6000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			up := &upstream{fn: func(ctx context.Context, _ int, _ *filters.UpstreamRequest, body []byte) (*l7.Response, error) {
				got = len(body)
				return tc.respond(ctx)
			}}
			s := run(t, tb, up, tc.req())
			if got != tc.wantBody {
				t.Errorf("upstream read %d body bytes, want %d", got, tc.wantBody)
			}
			switch {
			case tc.wantCode == 0 && (s.Local != nil || s.Response == nil || s.Response.Status != 200):
				t.Errorf("local %+v response %+v, want the upstream's 200", s.Local, s.Response)
			case tc.wantCode != 0 && s.Response != nil:
				t.Errorf("response %d, want a %d", s.Response.Status, tc.wantCode)
			}
		})
	}
}

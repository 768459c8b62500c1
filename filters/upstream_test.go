package filters_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// closeTracked is a response body that records whether it was closed
// before the callback returned.
type closeTracked struct {
	io.Reader
	closed bool
}

func (c *closeTracked) Close() error { c.closed = true; return nil }

type oneAnswer struct {
	body *closeTracked
	err  error
}

func (u oneAnswer) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	if u.err != nil {
		return nil, u.err
	}
	r := &l7.Response{Status: 200}
	if u.body != nil {
		r.Body = u.body
	}
	return r, nil
}

func TestCallWhole(t *testing.T) {
	refused := errors.New("refused")
	for _, tc := range []struct {
		name     string
		up       filters.Upstream
		body     string
		noBody   bool
		roundErr error
		wantErr  string
		wantBody string
	}{
		{name: "whole body", body: "hello", wantBody: "hello"},
		{name: "body at the limit", body: strings.Repeat("x", 8), wantBody: strings.Repeat("x", 8)},
		{name: "body over the limit", body: strings.Repeat("x", 9), wantErr: "larger than 8 bytes"},
		{name: "no body", noBody: true},
		{name: "round trip fails", roundErr: refused, wantErr: "refused"},
		{name: "no upstream", wantErr: "no upstream to reach cluster c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body *closeTracked
			var up filters.Upstream
			if tc.name != "no upstream" {
				if !tc.noBody {
					body = &closeTracked{Reader: strings.NewReader(tc.body)}
				}
				up = oneAnswer{body: body, err: tc.roundErr}
			}
			called := false
			err := filters.CallWhole(context.Background(), up, &filters.UpstreamRequest{Cluster: "c"}, 8, func(resp *l7.Response, b []byte) error {
				called = true
				if body != nil && body.closed {
					t.Error("the body was closed before the callback")
				}
				if string(b) != tc.wantBody || resp.Status != 200 {
					t.Errorf("got %d %q, want 200 %q", resp.Status, b, tc.wantBody)
				}
				return nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || called {
					t.Errorf("err %v, called %v; want an error with %q and no call", err, called, tc.wantErr)
				}
				return
			}
			if err != nil || !called {
				t.Fatalf("err %v, called %v", err, called)
			}
			if body != nil && !body.closed {
				t.Error("the body was not closed")
			}
		})
	}
}

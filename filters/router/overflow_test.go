package router

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"testing"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// runWith is run with the router built from cfg.
func runWith(t *testing.T, cfg proto.Message, up filters.Upstream, req *l7.Request, down *filters.Downstream) *filters.Stream {
	t.Helper()
	r, err := factory{}.New(filters.BuildContext{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	chain := filters.NewChain(r)
	s := filters.NewStream(context.Background(), req, down, table(t, basic+sticky))
	s.Upstream = up
	chain.Run(s)
	s.End()
	return s
}

const sticky = `
  - match: {prefix: /sticky}
    route:
      cluster: backend
      hash_policy: [{cookie: {name: session, ttl: 60s, path: /}}]
`

func TestOverflow(t *testing.T) {
	overflow := status.New(status.Overflow, errors.New("max_requests reached"))
	for _, tc := range []struct {
		name      string
		cfg       proto.Message
		fn        attemptFunc
		wantTries int
		wantBody  string
		wantHdr   string // x-envoy-overloaded
	}{
		{"the first try overflows: no retry", nil, func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return nil, overflow
		}, 1, "upstream connect error or disconnect/reset before headers. reset reason: overflow", "true"},
		{"a retry overflows", nil, func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			if n == 0 {
				return respond(503), nil
			}
			return nil, overflow
		}, 2, "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: overflow", "true"},
		{"suppress_envoy_headers", &routerv3.Router{SuppressEnvoyHeaders: true}, func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return nil, overflow
		}, 1, "upstream connect error or disconnect/reset before headers. reset reason: overflow", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{fn: tc.fn}
			s := runWith(t, tc.cfg, up, get("/retry"), &filters.Downstream{})
			if len(up.tries) != tc.wantTries {
				t.Errorf("%d tries, want %d", len(up.tries), tc.wantTries)
			}
			if s.Local == nil {
				t.Fatalf("want a local reply, got %+v", s.Response)
			}
			if s.Local.Status != 503 || s.Local.Body != tc.wantBody || s.Local.Kind != status.Overflow || s.ResponseFlags.String() != "UO" {
				t.Errorf("local reply %d %q kind %v flags %q, want 503 %q Overflow UO", s.Local.Status, s.Local.Body, s.Local.Kind, s.ResponseFlags, tc.wantBody)
			}
			if got := s.Local.Header.GetString("x-envoy-overloaded"); got != tc.wantHdr {
				t.Errorf("x-envoy-overloaded %q, want %q", got, tc.wantHdr)
			}
		})
	}
}

func TestHashCookieIsSet(t *testing.T) {
	down := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:5000"), LocalAddr: netip.MustParseAddrPort("10.0.0.2:80")}
	setCookie := regexp.MustCompile(`^session="[0-9a-f]{16}"; Max-Age=60; Path=/; HttpOnly$`)
	for _, tc := range []struct {
		name     string
		path     string
		cookie   string
		hashUsed bool // the cluster's balancer keyed on the hash
		want     bool
	}{
		{"no cookie, a ring-hash cluster: generated", "/sticky", "", true, true},
		{"the cookie sent: nothing to generate", "/sticky", "session=abc", false, false},
		{"the cookie sent, among others", "/sticky", "a=1; session=abc", true, false},
		{"another cookie only: generated", "/sticky", "a=1", true, true},
		{"a balancer that ignores the hash: no hash computed, no cookie", "/sticky", "", false, false},
		{"a route without hash policy", "/no-retry", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{fn: func(_ context.Context, _ int, req *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
				req.HashUsed = tc.hashUsed
				return respond(200), nil
			}}
			req := get(tc.path)
			if tc.cookie != "" {
				req.Header.Add("cookie", tc.cookie)
			}
			s := runWith(t, nil, up, req, down)
			if s.Response == nil {
				t.Fatalf("local reply %+v", s.Local)
			}
			var got []string
			for _, f := range s.Response.Header.Fields() {
				if string(f.Name) == "set-cookie" {
					got = append(got, string(f.Value))
				}
			}
			switch {
			case !tc.want && len(got) != 0:
				t.Errorf("set-cookie %q, want none", got)
			case tc.want && (len(got) != 1 || !setCookie.MatchString(got[0])):
				t.Errorf("set-cookie %q, want one session=\"<hex>\"; Max-Age=60; Path=/; HttpOnly", got)
			}
		})
	}
}

// limitedUpstream is an upstream whose cluster allows slots retries in flight.
type limitedUpstream struct {
	upstream
	slots, held, taken int
}

func (u *limitedUpstream) TryRetry(string) (func(), bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.held >= u.slots {
		return nil, false
	}
	u.held++
	u.taken++
	return func() { u.mu.Lock(); u.held--; u.mu.Unlock() }, true
}

func TestRetryLimit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		slots      int
		fn         attemptFunc
		wantTries  int
		wantStatus int
		wantLocal  bool
		wantFlags  string
	}{
		{"no retry slot: the 503 in hand, UO", 0, func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return respond(503), nil
		}, 1, 503, false, "UO"},
		{"no retry slot after a connect failure: UF, UO", 0, func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return nil, status.New(status.ConnectFailure, errors.New("refused"))
		}, 1, 503, true, "UF,UO"},
		{"one slot, given back before the next retry: every retry runs", 1, func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			if n < 3 {
				return respond(503), nil
			}
			return respond(200), nil
		}, 4, 200, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &limitedUpstream{upstream: upstream{fn: tc.fn}, slots: tc.slots}
			s := runWith(t, nil, up, get("/retry"), &filters.Downstream{})
			if len(up.tries) != tc.wantTries {
				t.Errorf("%d tries, want %d", len(up.tries), tc.wantTries)
			}
			got := 0
			if tc.wantLocal {
				if s.Local == nil {
					t.Fatalf("want a local reply, got %+v", s.Response)
				}
				got = s.Local.Status
			} else {
				if s.Response == nil {
					t.Fatalf("want the upstream's response, got local %+v", s.Local)
				}
				got = s.Response.Status
			}
			if got != tc.wantStatus || s.ResponseFlags.String() != tc.wantFlags {
				t.Errorf("status %d flags %q, want %d %q", got, s.ResponseFlags, tc.wantStatus, tc.wantFlags)
			}
			for i, tr := range up.tries {
				if tr.RetryHeld != (i > 0) {
					t.Errorf("try %d: RetryHeld %v", i, tr.RetryHeld)
				}
			}
			if up.held != 0 || up.taken != tc.wantTries-1 {
				t.Errorf("after the stream: %d slots held, %d taken; want 0, %d", up.held, up.taken, tc.wantTries-1)
			}
		})
	}
}

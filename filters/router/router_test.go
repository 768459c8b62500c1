package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func table(t testing.TB, y string) *route.Table {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var rc routev3.RouteConfiguration
	if err := protojson.Unmarshal(j, &rc); err != nil {
		t.Fatal(err)
	}
	tb, err := route.Compile(&rc, route.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// attemptFunc answers one try; n counts from 0.
type attemptFunc func(ctx context.Context, n int, req *filters.UpstreamRequest, body []byte) (*l7.Response, error)

// upstream is a scripted filters.Upstream recording every try.
type upstream struct {
	mu     sync.Mutex
	fn     attemptFunc
	tries  []filters.UpstreamRequest
	bodies [][]byte
	hosts  []netip.AddrPort
}

// withDeadline applies the request's deadline to ctx, as a real upstream
// applies it to its transport.
func withDeadline(ctx context.Context, req *filters.UpstreamRequest) (context.Context, context.CancelFunc) {
	if req.Deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, req.Deadline)
}

func (u *upstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	ctx, cancel := withDeadline(ctx, req)
	defer cancel()
	u.mu.Lock()
	n := len(u.tries)
	u.tries = append(u.tries, *req)
	u.mu.Unlock()
	var body []byte
	if req.Request.Body != nil {
		body, _ = io.ReadAll(req.Request.Body)
	}
	u.mu.Lock()
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	req.Host = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 30, byte(n + 1)}), 80)
	return u.fn(ctx, n, req, body)
}

func respond(code int) *l7.Response {
	r := &l7.Response{Status: code, ContentLength: 0}
	return r
}

func run(t *testing.T, tb *route.Table, up filters.Upstream, req *l7.Request) *filters.Stream {
	t.Helper()
	r, err := factory{}.New(filters.BuildContext{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	chain := filters.NewChain(r)
	s := filters.NewStream(context.Background(), req, &filters.Downstream{}, tb)
	s.Upstream = up
	chain.Run(s)
	s.End()
	return s
}

func get(path string) *l7.Request {
	return &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(path), ContentLength: 0}
}

func post(path string, body []byte) *l7.Request {
	r := get(path)
	r.Method = "POST"
	r.Body = bytes.NewReader(body)
	r.ContentLength = int64(len(body))
	return r
}

const basic = `
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: x-vh, value: "1"}}]
  routes:
  - match: {prefix: /direct}
    direct_response: {status: 418, body: {inline_string: short and stout}}
  - match: {prefix: /moved}
    redirect: {path_redirect: /new, response_code: FOUND}
  - match: {prefix: /api/}
    route:
      cluster: backend
      prefix_rewrite: /v1/
    response_headers_to_add: [{header: {key: x-route, value: api}}]
  - match: {prefix: /retry}
    route:
      cluster: backend
      timeout: 10s
      retry_policy:
        retry_on: 5xx,connect-failure
        num_retries: 3
        retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}
        retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
        host_selection_retry_max_attempts: 5
  - match: {prefix: /no-retry}
    route: {cluster: backend}
  - match: {prefix: /per-try}
    route:
      cluster: backend
      timeout: 10s
      retry_policy: {retry_on: 5xx, num_retries: 2, per_try_timeout: 0.05s, retry_back_off: {base_interval: 0.001s}}
  - match: {prefix: /slow}
    route: {cluster: backend, timeout: 0.05s, retry_policy: {retry_on: 5xx, num_retries: 5, retry_back_off: {base_interval: 0.001s}}}
  - match: {prefix: /grpc, grpc: {}}
    route:
      cluster: backend
      timeout: 0s
      max_stream_duration: {grpc_timeout_header_max: 0s}
      retry_policy: {retry_on: unavailable, num_retries: 1, retry_back_off: {base_interval: 0.001s}}
`

func TestRouting(t *testing.T) {
	tb := table(t, basic)
	up := &upstream{fn: func(ctx context.Context, n int, req *filters.UpstreamRequest, body []byte) (*l7.Response, error) {
		return respond(200), nil
	}}
	s := run(t, tb, up, get("/api/items?x=1"))
	if s.Local != nil || s.Response == nil || s.Response.Status != 200 {
		t.Fatalf("local %+v response %+v", s.Local, s.Response)
	}
	sent := up.tries[0]
	if sent.Cluster != "backend" || string(sent.Request.Path) != "/v1/items?x=1" || sent.Request.Header.GetString("x-vh") != "1" {
		t.Errorf("sent cluster %q path %q x-vh %q", sent.Cluster, sent.Request.Path, sent.Request.Header.GetString("x-vh"))
	}
	if sent.Request.Header.GetString("x-envoy-original-path") != "/api/items?x=1" {
		t.Errorf("x-envoy-original-path = %q", sent.Request.Header.GetString("x-envoy-original-path"))
	}
	if s.Response.Header.GetString("x-route") != "api" {
		t.Errorf("response header mutation missing")
	}
}

func TestLocalAnswers(t *testing.T) {
	tb := table(t, basic)
	never := &upstream{fn: func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
		return nil, errors.New("must not be called")
	}}
	cases := []struct {
		path       string
		wantStatus int
		wantBody   string
		wantHeader [2]string
		wantFlag   string
	}{
		{"/direct", 418, "short and stout", [2]string{}, ""},
		{"/moved", 302, "", [2]string{"location", "http://svc/new"}, ""},
	}
	for _, c := range cases {
		s := run(t, tb, never, get(c.path))
		if s.Local == nil || s.Local.Status != c.wantStatus || s.Local.Body != c.wantBody {
			t.Errorf("%s: local %+v", c.path, s.Local)
			continue
		}
		if c.wantHeader[0] != "" && s.Local.Header.GetString(c.wantHeader[0]) != c.wantHeader[1] {
			t.Errorf("%s: %s = %q, want %q", c.path, c.wantHeader[0], s.Local.Header.GetString(c.wantHeader[0]), c.wantHeader[1])
		}
	}
	none := table(t, "virtual_hosts: [{name: vh, domains: [only.example], routes: [{match: {prefix: /}, route: {cluster: c}}]}]")
	s := run(t, none, never, get("/"))
	if s.Local == nil || s.Local.Status != 404 || s.ResponseFlags.String() != "NR" {
		t.Errorf("no route: local %+v flags %q, want 404 NR", s.Local, s.ResponseFlags)
	}
}

func TestRetries(t *testing.T) {
	tb := table(t, basic)
	cases := []struct {
		name        string
		path        string
		fn          attemptFunc
		wantTries   int
		wantStatus  int // final status, upstream or local
		wantLocal   bool
		wantFlags   string
		wantExclude bool
	}{
		{"503 then 200", "/retry", func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			if n == 0 {
				return respond(503), nil
			}
			return respond(200), nil
		}, 2, 200, false, "", true},
		{"connect failures then 200", "/retry", func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			if n < 2 {
				return nil, status.New(status.ConnectFailure, errors.New("refused"))
			}
			return respond(200), nil
		}, 3, 200, false, "", true},
		{"always 503: the last answer after num_retries", "/retry", func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return respond(503), nil
		}, 4, 503, false, "URX", true},
		{"always connect failure: URX", "/retry", func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return nil, status.New(status.ConnectFailure, errors.New("refused"))
		}, 4, 503, true, "UF,URX", true},
		{"connection terminations then 200", "/retry", func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			if n < 2 {
				return nil, status.New(status.ConnectionTermination, errors.New("EOF"))
			}
			return respond(200), nil
		}, 3, 200, false, "", true},
		{"always connection termination: UC,URX", "/retry", func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return nil, status.New(status.ConnectionTermination, errors.New("EOF"))
		}, 4, 503, true, "UC,URX", true},
		{"4xx is not retried", "/retry", func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return respond(404), nil
		}, 1, 404, false, "", false},
		{"no retry policy", "/no-retry", func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
			return respond(503), nil
		}, 1, 503, false, "", false},
		{"per-try timeout is retried, then 504", "/per-try", func(ctx context.Context, _ int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			<-ctx.Done()
			return nil, status.New(status.UpstreamReset, ctx.Err())
		}, 3, 504, true, "UT,URX", false},
		{"the route timeout covers every try", "/slow", func(ctx context.Context, _ int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			select {
			case <-ctx.Done():
				return nil, status.New(status.UpstreamReset, ctx.Err())
			case <-time.After(20 * time.Millisecond):
				return respond(503), nil
			}
		}, -1, 504, true, "UT", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := &upstream{fn: c.fn}
			s := run(t, tb, up, get(c.path))
			if c.wantTries >= 0 && len(up.tries) != c.wantTries {
				t.Errorf("%d tries, want %d", len(up.tries), c.wantTries)
			}
			if c.wantTries < 0 && len(up.tries) > 5 {
				t.Errorf("%d tries within a 50 ms route timeout of 20 ms tries", len(up.tries))
			}
			var got int
			if c.wantLocal {
				if s.Local == nil {
					t.Fatalf("want a local reply, got response %+v", s.Response)
				}
				got = s.Local.Status
			} else {
				if s.Response == nil {
					t.Fatalf("want an upstream response, got local %+v", s.Local)
				}
				got = s.Response.Status
			}
			if got != c.wantStatus || s.ResponseFlags.String() != c.wantFlags {
				t.Errorf("status %d flags %q, want %d %q", got, s.ResponseFlags, c.wantStatus, c.wantFlags)
			}
			if c.wantExclude {
				for i, tr := range up.tries {
					if len(tr.Exclude) != i || tr.Retry != (i > 0) || tr.MaxHostSelectionAttempts != 5 {
						t.Errorf("try %d: exclude %v retry %v attempts %d; want the %d hosts before, previous_hosts", i, tr.Exclude, tr.Retry, tr.MaxHostSelectionAttempts, i)
					}
				}
			}
		})
	}
}

func TestRetryReplaysTheBody(t *testing.T) {
	tb := table(t, basic)
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	up := &upstream{fn: func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
		if n == 0 {
			return respond(503), nil
		}
		return respond(200), nil
	}}
	s := run(t, tb, up, post("/retry", payload))
	if s.Response == nil || s.Response.Status != 200 || len(up.bodies) != 2 {
		t.Fatalf("tries %d, final %+v", len(up.bodies), s.Response)
	}
	for i, b := range up.bodies {
		if !bytes.Equal(b, payload) {
			t.Errorf("try %d got %d body bytes, want all %d", i, len(b), len(payload))
		}
	}
}

func TestBodyOverRetryBufferIsNotRetried(t *testing.T) {
	tb := table(t, basic)
	payload := make([]byte, DefaultRetryBufferLimit+1)
	up := &upstream{fn: func(context.Context, int, *filters.UpstreamRequest, []byte) (*l7.Response, error) {
		return respond(503), nil
	}}
	s := run(t, tb, up, post("/retry", payload))
	if len(up.tries) != 1 || s.Response == nil || s.Response.Status != 503 {
		t.Fatalf("%d tries with a body over the retry buffer, want 1 and the 503", len(up.tries))
	}
}

// TestFullDuplexRetry: the first try's body pump is still reading when its
// response says retry; the new try must get the whole body and the old
// pump must not steal any of it.
func TestFullDuplexRetry(t *testing.T) {
	tb := table(t, basic)
	pr, pw := io.Pipe()
	req := get("/retry")
	req.Method = "POST"
	req.Body = pr
	req.ContentLength = -1
	staleErr := make(chan error, 1)
	var second []byte
	up := &countedUpstream{fn: func(ctx context.Context, n int, ureq *filters.UpstreamRequest) (*l7.Response, error) {
		body := ureq.Request.Body
		if n == 0 {
			started := make(chan struct{})
			go func() { // a pump that outlives its try
				buf := make([]byte, 4)
				io.ReadFull(body, buf) // "ab" + "cd" arrive before the retry
				close(started)
				_, err := io.ReadAll(body)
				staleErr <- err
			}()
			pw.Write([]byte("ab"))
			pw.Write([]byte("cd"))
			<-started
			return respond(503), nil
		}
		go func() {
			pw.Write([]byte("ef"))
			pw.Close()
		}()
		second, _ = io.ReadAll(body)
		return respond(200), nil
	}}
	s := run(t, tb, up, req)
	if s.Response == nil || s.Response.Status != 200 {
		t.Fatalf("final %+v %+v", s.Response, s.Local)
	}
	if string(second) != "abcdef" {
		t.Errorf("retry sent %q, want the whole body abcdef", second)
	}
	if err := <-staleErr; !errors.Is(err, errStaleTry) {
		t.Errorf("abandoned pump ended with %v, want errStaleTry", err)
	}
}

// upstreamFunc adapts a function to filters.Upstream, counting tries.
type upstreamFunc func(ctx context.Context, n int, req *filters.UpstreamRequest) (*l7.Response, error)

type countedUpstream struct {
	fn upstreamFunc
	n  int
}

func (u *countedUpstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	ctx, cancel := withDeadline(ctx, req)
	defer cancel()
	n := u.n
	u.n++
	return u.fn(ctx, n, req)
}

func grpcReq(timeout string) *l7.Request {
	r := post("/grpc.Service/Method", []byte("x"))
	r.Header.Add("content-type", "application/grpc")
	if timeout != "" {
		r.Header.Add("grpc-timeout", timeout)
	}
	return r
}

func TestGRPC(t *testing.T) {
	tb := table(t, basic)
	t.Run("grpc-timeout bounds the request", func(t *testing.T) {
		// The call has a body: its deadline runs from the body's end
		// (timeout.go), and ends the try's context.
		up := &upstream{fn: func(ctx context.Context, _ int, req *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			<-ctx.Done()
			return nil, status.New(status.UpstreamReset, ctx.Err())
		}}
		s := run(t, tb, up, grpcReq("50m"))
		if s.Local == nil || s.Local.GRPCStatus == nil || *s.Local.GRPCStatus != status.GRPCDeadlineExceeded {
			t.Errorf("local %+v, want grpc-status DEADLINE_EXCEEDED", s.Local)
		}
	})
	t.Run("trailers-only unavailable is retried", func(t *testing.T) {
		up := &upstream{fn: func(_ context.Context, n int, _ *filters.UpstreamRequest, _ []byte) (*l7.Response, error) {
			r := respond(200)
			if n == 0 {
				r.Header.Add("grpc-status", "14")
			}
			return r, nil
		}}
		s := run(t, tb, up, grpcReq(""))
		if len(up.tries) != 2 || s.Response.Header.Has("grpc-status") {
			t.Errorf("%d tries, final grpc-status %q", len(up.tries), s.Response.Header.GetString("grpc-status"))
		}
	})
}

func TestParseGRPCTimeout(t *testing.T) {
	cases := map[string]time.Duration{"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "40m": 40 * time.Millisecond,
		"5u": 5 * time.Microsecond, "6n": 6, "99999999S": 99999999 * time.Second}
	for v, want := range cases {
		if got, ok := ParseGRPCTimeout([]byte(v)); !ok || got != want {
			t.Errorf("%q = %v %v, want %v", v, got, ok, want)
		}
	}
	for _, bad := range []string{"", "S", "1x", "123456789S", "-1S", "1.5S"} {
		if _, ok := ParseGRPCTimeout([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestBackoffIsBoundedAndGrows(t *testing.T) {
	b := newBackoff(&route.RetryPolicy{BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond})
	ceilings := []time.Duration{25, 75, 175, 250, 250}
	for i, c := range ceilings {
		for range 200 {
			bb := *b
			if d := bb.next(); d < 0 || d >= c*time.Millisecond && d != 250*time.Millisecond {
				t.Fatalf("try %d: back-off %v outside [0, %vms)", i, d, c)
			}
		}
		b.next()
	}
}

// TestRetriableKinds checks which failures each retry_on condition retries,
// as Envoy's RetryStateImpl::wouldRetryFromReset: every reset (a connect
// failure, a connection termination, a remote or refused stream reset, a
// per-try timeout's local reset) on reset, 5xx and gateway-error; a
// connect failure also on connect-failure, a refused stream also on
// refused-stream; an overflow, a vanished downstream or anything else
// never.
func TestRetriableKinds(t *testing.T) {
	kinds := []status.Kind{status.ConnectFailure, status.ConnectionTermination, status.UpstreamReset, status.RefusedStream,
		status.Timeout, status.Overflow, status.DownstreamGone, status.Unknown}
	for _, tc := range []struct {
		on   string
		want []status.Kind // retried; the other kinds are not
	}{
		{"reset", []status.Kind{status.ConnectFailure, status.ConnectionTermination, status.UpstreamReset, status.RefusedStream, status.Timeout}},
		{"5xx", []status.Kind{status.ConnectFailure, status.ConnectionTermination, status.UpstreamReset, status.RefusedStream, status.Timeout}},
		{"gateway-error", []status.Kind{status.ConnectFailure, status.ConnectionTermination, status.UpstreamReset, status.RefusedStream, status.Timeout}},
		{"connect-failure", []status.Kind{status.ConnectFailure}},
		{"refused-stream", []status.Kind{status.RefusedStream}},
		{"retriable-4xx,retriable-status-codes", nil},
	} {
		on, err := route.ParseRetryOn(tc.on)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kinds {
			if got, want := retriableKind(on, k), slices.Contains(tc.want, k); got != want {
				t.Errorf("retry_on %s, %v: retried %v, want %v", tc.on, k, got, want)
			}
		}
	}
}

package dubborouter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/dubboroute"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func table(t *testing.T, y string) *dubboroute.Table {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var mrc dubbov3.MultipleRouteConfiguration
	if err := protojson.Unmarshal(js, &mrc); err != nil {
		t.Fatal(err)
	}
	tb, err := dubboroute.Compile(mrc.GetRouteConfig(), "route_config", dubboroute.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// resolver matches calls whose bodies were decoded (args not nil).
type resolver struct {
	tb      *dubboroute.Table
	decoded bool
}

type noArgs struct{}

func (noArgs) Arg(int) ([]byte, bool) { return nil, false }

func (r resolver) Resolve(s *filters.Stream) filters.Route {
	var a dubboroute.Args
	if r.decoded {
		a = noArgs{}
	}
	if rt := r.tb.Match(s.Request, a); rt != nil {
		return rt
	}
	return nil
}

// try is one scripted answer: a Dubbo status, or an error.
type answer struct {
	status string
	err    error
}

type upstream struct {
	answers []answer
	tries   []filters.UpstreamRequest
	closed  int
}

type body struct{ u *upstream }

func (b body) Read([]byte) (int, error) { return 0, errors.New("not read") }
func (b body) Close() error             { b.u.closed++; return nil }

func (u *upstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	n := len(u.tries)
	cp := *req
	cp.Exclude = append([]netip.AddrPort(nil), req.Exclude...)
	u.tries = append(u.tries, cp)
	req.Host = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 50, byte(n + 1)}), 20880)
	a := u.answers[min(n, len(u.answers)-1)]
	if a.err != nil {
		return nil, a.err
	}
	resp := &l7.Response{Proto: l7.Dubbo, Status: 200, Body: body{u}}
	resp.Header.Add(HeaderStatus, a.status)
	return resp, nil
}

// observer records the tries it is told of.
type observer struct{ events []string }

func (o *observer) StartAttempt(s *filters.Stream, req *filters.UpstreamRequest) {
	o.events = append(o.events, fmt.Sprintf("start %s retry=%v", req.Cluster, req.Retry))
}

func (o *observer) EndAttempt(s *filters.Stream, req *filters.UpstreamRequest, resp *l7.Response, err error) {
	o.events = append(o.events, fmt.Sprintf("end %v err=%v", req.Host, err != nil))
}

const routes = `
route_config:
- interface: com.example.Greeter
  routes:
  - match: {method: {name: {exact: hello}}}
    route: {cluster: greeter}
- interface: "*"
  routes:
  - match: {method: {name: {exact: x}}}
    route: {cluster: other}
`

func call(method string, atts ...string) *l7.Request {
	req := &l7.Request{Proto: l7.Dubbo, Method: method, Path: []byte("/com.example.Greeter/" + method)}
	req.Header.Add(":dubbo-service-version", "")
	for i := 0; i+1 < len(atts); i += 2 {
		req.Header.Add(atts[i], atts[i+1])
	}
	return req
}

func TestServe(t *testing.T) {
	connFail := status.New(status.ConnectFailure, errors.New("refused"))
	reset := status.New(status.UpstreamReset, errors.New("closed mid-call"))
	cases := []struct {
		name      string
		req       *l7.Request
		decoded   bool
		answers   []answer
		wantTries int
		wantErr   status.Kind // Unknown: no error
		wantLocal int
		wantDubbo string
		wantFlags string
	}{
		{"one try", call("hello"), true, []answer{{status: "20"}}, 1, status.Unknown, 0, "20", ""},
		{"no route", call("bye"), true, nil, 0, status.NoRoute, 0, "", ""},
		{"the body is needed", call(""), false, nil, 0, status.Unknown, 400, "", ""},
		{"a connect failure, then another endpoint", call("hello"), true, []answer{{err: connFail}, {status: "20"}}, 2, status.Unknown, 0, "20", ""},
		{"threadpool exhausted, then another endpoint", call("hello"), true, []answer{{status: "100"}, {status: "20"}}, 2, status.Unknown, 0, "20", ""},
		{"exhausted everywhere", call("hello"), true, []answer{{status: "100"}}, 3, status.Unknown, 0, "100", "URX"},
		{"connect failures everywhere", call("hello"), true, []answer{{err: connFail}}, 3, status.ConnectFailure, 0, "", "URX"},
		{"a call lost mid-way is not retried", call("hello"), true, []answer{{err: reset}, {status: "20"}}, 1, status.UpstreamReset, 0, "", ""},
		{"a provider's error is its answer", call("hello"), true, []answer{{status: "80"}}, 1, status.Unknown, 0, "80", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := factory{}.New(filters.BuildContext{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := f
			u := &upstream{answers: c.answers}
			s := filters.NewStream(context.Background(), c.req, &filters.Downstream{}, resolver{table(t, routes), c.decoded})
			s.Upstream = u
			obs := &observer{}
			s.Observer = obs
			err = r.Serve(s)
			if status.KindOf(err) != c.wantErr || (err != nil) != (c.wantErr != status.Unknown) {
				t.Fatalf("Serve = %v, want kind %v", err, c.wantErr)
			}
			if len(u.tries) != c.wantTries {
				t.Fatalf("%d tries, want %d", len(u.tries), c.wantTries)
			}
			for i, tr := range u.tries {
				if tr.Cluster != "greeter" || tr.Retry != (i > 0) || len(tr.Exclude) != i || tr.MaxHostSelectionAttempts != hostSelectionAttempts {
					t.Fatalf("try %d: %+v", i, tr)
				}
			}
			if s.Attempts != c.wantTries || len(obs.events) != 2*c.wantTries {
				t.Fatalf("stream attempts %d, observer saw %v; want %d tries", s.Attempts, obs.events, c.wantTries)
			}
			for i := range c.wantTries {
				a := c.answers[min(i, len(c.answers)-1)]
				start, end := fmt.Sprintf("start greeter retry=%v", i > 0), fmt.Sprintf("end 127.0.50.%d:20880 err=%v", i+1, a.err != nil)
				if obs.events[2*i] != start || obs.events[2*i+1] != end {
					t.Fatalf("try %d: observer saw %q, %q; want %q, %q", i, obs.events[2*i], obs.events[2*i+1], start, end)
				}
			}
			if c.wantTries > 0 {
				last := c.answers[min(c.wantTries-1, len(c.answers)-1)]
				host := fmt.Sprintf("127.0.50.%d:20880", c.wantTries)
				if s.UpstreamCluster != "greeter" || s.UpstreamHost.String() != host || (s.UpstreamFailure != "") != (last.err != nil) {
					t.Fatalf("stream upstream %q %v failure %q; want greeter %s", s.UpstreamCluster, s.UpstreamHost, s.UpstreamFailure, host)
				}
			}
			if c.wantLocal != 0 && (s.Local == nil || s.Local.Status != c.wantLocal) {
				t.Fatalf("local reply %+v, want %d", s.Local, c.wantLocal)
			}
			if c.wantDubbo != "" {
				v, _ := s.Response.Header.Get(HeaderStatus)
				if string(v) != c.wantDubbo {
					t.Fatalf("response status %q, want %q", v, c.wantDubbo)
				}
				responses := 0
				for i := range u.tries {
					if c.answers[min(i, len(c.answers)-1)].err == nil {
						responses++
					}
				}
				if u.closed != responses-1 {
					t.Fatalf("%d responses discarded, want %d", u.closed, responses-1)
				}
			}
			if got := s.ResponseFlags.String(); got != c.wantFlags {
				t.Fatalf("flags %q, want %q", got, c.wantFlags)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	r := &Router{Retries: DefaultRetries, DefaultTimeout: DefaultTimeout}
	for _, c := range []struct {
		atts []string
		want time.Duration
	}{
		{nil, DefaultTimeout},
		{[]string{"timeout", "250"}, 250 * time.Millisecond},
		{[]string{"timeout", "0"}, DefaultTimeout},
		{[]string{"timeout", "-5"}, DefaultTimeout},
		{[]string{"timeout", "12345678901"}, DefaultTimeout},
	} {
		u := &upstream{answers: []answer{{status: "20"}}}
		s := filters.NewStream(context.Background(), call("hello", c.atts...), &filters.Downstream{}, resolver{table(t, routes), true})
		s.Upstream = u
		if err := r.Serve(s); err != nil {
			t.Fatal(err)
		}
		if got := u.tries[0].Deadline.Sub(s.Start); got != c.want {
			t.Errorf("%v: deadline %v after the start, want %v", c.atts, got, c.want)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, err := filters.Lookup(Name, TypeURL)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{Name}, f.Names()); diff != "" {
		t.Fatal(diff)
	}
}

package localratelimit

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pct(n uint32) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}, RuntimeKey: "k"}
}

// limit is a config of max tokens per minute, enabled and enforced.
func limit(max uint32) *lrlv3.LocalRateLimit {
	return &lrlv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter",
		TokenBucket:   &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(max), FillInterval: durationpb.New(time.Minute)},
		FilterEnabled: pct(100), FilterEnforced: pct(100)}
}

type testRoute struct{ cfg any }

func (r testRoute) Name() string                 { return "r" }
func (r testRoute) FilterConfig(name string) any { return map[string]any{Name: r.cfg}[name] }

type resolver struct{ r filters.Route }

func (r resolver) Resolve(*filters.Stream) filters.Route { return r.r }

func build(t testing.TB, reg *prometheus.Registry, cfg *lrlv3.LocalRateLimit) *Filter {
	t.Helper()
	ctx := filters.BuildContext{Name: Name}
	if reg != nil {
		ctx.Stats = filters.NewScope(reg)
	}
	f, err := factory{}.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func stream(rr filters.RouteResolver) *filters.Stream {
	return filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/")}, &filters.Downstream{}, rr)
}

// TestLimit: a bucket of 3 tokens lets 3 requests through, then answers 429 with
// x-envoy-ratelimited, the configured headers, the RL flag and Envoy's details; the counters
// count as Envoy's.
func TestLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := limit(3)
	cfg.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "X-Local-Rate-Limit", Value: "true"}}}
	cfg.EnableXRatelimitHeaders = ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	cfg.EnableRetryAfterHeader = true
	f := build(t, reg, cfg)
	for i := range 5 {
		s := stream(nil)
		st := f.OnRequest(s)
		if i < 3 {
			if st != filters.Continue || s.Local != nil {
				t.Fatalf("request %d: limited", i)
			}
			s.Response = &l7.Response{Status: 200}
			f.OnResponse(s)
			if v, _ := s.Response.Header.Get("x-ratelimit-remaining"); string(v) != string(rune('2'-i)) {
				t.Errorf("request %d: x-ratelimit-remaining %q", i, v)
			}
			continue
		}
		if st != filters.Stop || s.Local == nil || s.Local.Status != 429 || s.Local.Body != "local_rate_limited" {
			t.Fatalf("request %d: %v %+v, want 429", i, st, s.Local)
		}
		h := &s.Local.Header
		for name, want := range map[string]string{"x-envoy-ratelimited": "true", "x-local-rate-limit": "true",
			"x-ratelimit-limit": "3", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "60", "retry-after": "60"} {
			if v, _ := h.Get(name); string(v) != want {
				t.Errorf("request %d: %s %q, want %q", i, name, v, want)
			}
		}
		if s.ResponseFlags != filters.FlagRL || s.ResponseCodeDetails != "local_rate_limited" {
			t.Errorf("flags %v details %q", s.ResponseFlags, s.ResponseCodeDetails)
		}
	}
	st := f.cfg.stats
	for name, c := range map[string]struct {
		c    prometheus.Counter
		want float64
	}{"enabled": {st.enabled, 5}, "ok": {st.ok, 3}, "rate_limited": {st.rateLimited, 2}, "enforced": {st.enforced, 2}} {
		var m dto.Metric
		if err := c.c.Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = mf.GetMetric()[0].GetLabel()[0].GetValue() == "http_local_rate_limiter"
	}
	if !names["envoy_http_local_rate_limit_rate_limited"] {
		t.Errorf("registered: %v", names)
	}
}

// TestNotEnforcedDisabledRoute: not enforced, a request without a token goes on with
// request_headers_to_add_when_not_enforced; disabled, nothing is checked; a route's config has
// its own bucket; a listener config without a bucket limits nothing; the status is
// configurable; refill after the interval.
func TestNotEnforcedDisabledRoute(t *testing.T) {
	cfg := limit(1)
	cfg.FilterEnforced = nil
	cfg.RequestHeadersToAddWhenNotEnforced = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-would-limit", Value: "yes"}}}
	f := build(t, nil, cfg)
	f.OnRequest(stream(nil))
	s := stream(nil)
	if f.OnRequest(s) != filters.Continue || s.Local != nil {
		t.Fatal("not enforced: answered")
	}
	if v, _ := s.Request.Header.Get("x-would-limit"); string(v) != "yes" {
		t.Errorf("x-would-limit %q", v)
	}

	disabled := limit(1)
	disabled.FilterEnabled = nil
	f = build(t, nil, disabled)
	for range 3 {
		if s := stream(nil); f.OnRequest(s) != filters.Continue {
			t.Fatal("disabled: answered")
		}
	}

	// Per route: the listener's config has no bucket.
	f = build(t, nil, &lrlv3.LocalRateLimit{StatPrefix: "p"})
	rcfg := limit(1)
	rcfg.Status = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
	pr, err := factory{}.ParsePerRoute(filters.BuildContext{}, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	rr := resolver{testRoute{pr}}
	for range 3 {
		if f.OnRequest(stream(nil)) != filters.Continue {
			t.Fatal("no bucket: answered")
		}
	}
	f.OnRequest(stream(rr))
	if s := stream(rr); f.OnRequest(s) != filters.Stop || s.Local.Status != 503 {
		t.Fatalf("route: %+v, want 503", s.Local)
	}

	b := newBucket(2, 1, time.Second, time.Unix(0, 0))
	b.take(time.Unix(0, 0))
	b.take(time.Unix(0, 0))
	if b.take(time.Unix(0, 500e6)) {
		t.Error("a token before the fill")
	}
	if !b.take(time.Unix(1, 0)) || b.take(time.Unix(1, 900e6)) {
		t.Error("one token after one fill")
	}
	if n, reset := b.state(time.Unix(10, 500e6)); n != 2 || reset != 500*time.Millisecond {
		t.Errorf("after 9 fills: %d tokens, reset %v; want 2 (the max), 500ms", n, reset)
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*lrlv3.LocalRateLimit)
		want string
	}{
		{"descriptors without rate_limits", func(c *lrlv3.LocalRateLimit) {
			c.Descriptors = []*ratelimitv3.LocalRateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}, TokenBucket: c.TokenBucket}}
		}, "descriptors: the filter's rate_limits are required"},
		{"a wildcard descriptor", func(c *lrlv3.LocalRateLimit) {
			c.Descriptors = []*ratelimitv3.LocalRateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k"}}, TokenBucket: c.TokenBucket}}
			c.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}}}}
		}, "descriptors[0].entries[0].value: an entry without a value"},
		{"a rate limit stage", func(c *lrlv3.LocalRateLimit) {
			c.RateLimits = []*routev3.RateLimit{{Stage: wrapperspb.UInt32(1), Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}}}}
		}, "rate_limits[0].stage: not supported"},
		{"a metadata action", func(c *lrlv3.LocalRateLimit) {
			c.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_DestinationCluster_{}}}}}
		}, "rate_limits[0].actions[0].destination_cluster: not supported"},
		{"stage", func(c *lrlv3.LocalRateLimit) { c.Stage = 1 }, "stage: not supported"},
		{"fill interval", func(c *lrlv3.LocalRateLimit) { c.TokenBucket.FillInterval = durationpb.New(time.Millisecond) }, "token_bucket.fill_interval: 1ms is under 50ms"},
		{"a formatted header", func(c *lrlv3.LocalRateLimit) {
			c.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "%START_TIME%"}}}
		}, "response_headers_to_add[0].header.value"},
		{"no stat prefix", func(c *lrlv3.LocalRateLimit) { c.StatPrefix = "" }, "StatPrefix"},
	}
	for _, c := range cases {
		cfg := limit(1)
		c.mod(cfg)
		if _, err := (factory{}).New(filters.BuildContext{}, cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestPerConnection: with local_rate_limit_per_downstream_connection each downstream
// connection has a bucket of its own, dropped once the connection is gone.
func TestPerConnection(t *testing.T) {
	cfg := limit(1)
	cfg.LocalRateLimitPerDownstreamConnection = true
	f := build(t, nil, cfg)
	req := func(d *filters.Downstream) filters.Status {
		return f.OnRequest(filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/")}, d, nil))
	}
	a, b := &filters.Downstream{}, &filters.Downstream{}
	if req(a) != filters.Continue || req(a) != filters.Stop {
		t.Fatal("connection a: want one request, then 429")
	}
	if req(b) != filters.Continue {
		t.Fatal("connection b limited by a's bucket")
	}
	if n := f.cfg.perConn.len(); n != 2 {
		t.Fatalf("%d buckets, want 2", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	a, b = nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for f.cfg.perConn.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d buckets left after the connections went", f.cfg.perConn.len())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDescriptors: the filter's rate_limits make a request's descriptors (a header's value, a
// generic key when a header matches); a request whose descriptor matches takes from its bucket
// and from the default one; a request matching none from the default one only.
func TestDescriptors(t *testing.T) {
	cfg := limit(100)
	tb := func(n uint32) *typev3.TokenBucket {
		return &typev3.TokenBucket{MaxTokens: n, TokensPerFill: wrapperspb.UInt32(n), FillInterval: durationpb.New(time.Minute)}
	}
	cfg.Descriptors = []*ratelimitv3.LocalRateLimitDescriptor{
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "client", Value: "greedy"}}, TokenBucket: tb(2)},
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "header_match", Value: "admin"}}, TokenBucket: tb(1)},
	}
	cfg.RateLimits = []*routev3.RateLimit{
		{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "X-Client", DescriptorKey: "client"}}}}},
		{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
			HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{DescriptorValue: "admin", Headers: []*routev3.HeaderMatcher{
				{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "/admin"}}}}}}}},
	}
	cfg.EnableXRatelimitHeaders = ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	f := build(t, nil, cfg)
	req := func(path, client string) *filters.Stream {
		r := &l7.Request{Method: "GET", Path: []byte(path)}
		if client != "" {
			r.Header.Set("x-client", client)
		}
		s := filters.NewStream(context.Background(), r, &filters.Downstream{}, nil)
		f.OnRequest(s)
		return s
	}
	for i, c := range []struct {
		path, client string
		limited      bool
		limit        string
	}{
		{"/", "greedy", false, "2"}, {"/", "greedy", false, "2"}, {"/", "greedy", true, "2"},
		{"/", "modest", false, "100"}, {"/", "", false, "100"},
		{"/admin/x", "", false, "1"}, {"/admin/y", "", true, "1"},
	} {
		s := req(c.path, c.client)
		if (s.Local != nil) != c.limited {
			t.Errorf("request %d (%s, %q): limited %v, want %v", i, c.path, c.client, s.Local != nil, c.limited)
		}
		if s.Local != nil {
			if v, _ := s.Local.Header.Get("x-ratelimit-limit"); string(v) != c.limit {
				t.Errorf("request %d: x-ratelimit-limit %q, want %s", i, v, c.limit)
			}
		}
	}
	// The default bucket: 100, less the 6 requests that got their descriptors' tokens (the
	// limited ones stopped at their descriptor).
	if n, _ := f.cfg.bucket.state(time.Now()); n != 95 {
		t.Errorf("default bucket: %d tokens left, want 95", n)
	}
}

// BenchmarkNoLimit: a route of a chain whose filter has no bucket (the limit is on other
// routes) pays a route lookup and nothing else.
func BenchmarkNoLimit(b *testing.B) {
	f := build(b, nil, &lrlv3.LocalRateLimit{StatPrefix: "p"})
	s := stream(resolver{testRoute{nil}})
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(s)
	}
}

// BenchmarkTokenTaken: a request that takes a token.
func BenchmarkTokenTaken(b *testing.B) {
	cfg := limit(1 << 30)
	f := build(b, nil, cfg)
	s := stream(nil)
	b.ReportAllocs()
	for b.Loop() {
		f.OnRequest(s)
	}
}

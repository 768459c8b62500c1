package fault

import (
	"context"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pct(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}
}

func abortHTTP(status, percent uint32) *faultv3.HTTPFault {
	return &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}, Percentage: pct(percent)}}
}

// route is a filters.Route with a per-filter config.
type route struct{ cfg any }

func (r route) Name() string                 { return "r" }
func (r route) FilterConfig(name string) any { return map[string]any{Name: r.cfg}[name] }

type resolver struct{ r filters.Route }

func (r resolver) Resolve(*filters.Stream) filters.Route { return r.r }

func build(t *testing.T, cfg *faultv3.HTTPFault) *Filter {
	t.Helper()
	f, err := factory{}.New(filters.BuildContext{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func stream(ctx context.Context, headers map[string]string, rr filters.RouteResolver) *filters.Stream {
	req := &l7.Request{Method: "GET", Path: []byte("/")}
	for k, v := range headers {
		req.Header.Add(k, v)
	}
	return filters.NewStream(ctx, req, &filters.Downstream{}, rr)
}

func TestAbort(t *testing.T) {
	headerAbort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}, Percentage: pct(100)}}
	grpcAbort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(100)}}
	cases := []struct {
		name       string
		cfg        *faultv3.HTTPFault
		perRoute   *faultv3.HTTPFault
		headers    map[string]string
		wantStatus int // 0: not aborted
		wantGRPC   int // -1: none
	}{
		{"always", abortHTTP(503, 100), nil, nil, 503, -1},
		{"never", abortHTTP(503, 0), nil, nil, 0, -1},
		{"per-route config replaces the filter's", abortHTTP(503, 0), abortHTTP(418, 100), nil, 418, -1},
		{"per-route config can turn it off", abortHTTP(503, 100), abortHTTP(418, 0), nil, 0, -1},
		{"gRPC status", grpcAbort, nil, map[string]string{"content-type": "application/grpc"}, 200, 14},
		{"header chosen status", headerAbort, nil, map[string]string{HeaderAbort: "429"}, 429, -1},
		{"header abort absent", headerAbort, nil, nil, 0, -1},
		{"header abort out of range", headerAbort, nil, map[string]string{HeaderAbort: "700"}, 0, -1},
		{"header gRPC abort", headerAbort, nil, map[string]string{"content-type": "application/grpc", HeaderAbortGRPC: "7"}, 200, 7},
		{"percentage header lowers it", abortHTTP(503, 100), nil, map[string]string{HeaderAbortPercentage: "0"}, 0, -1},
		{"percentage header cannot raise it", abortHTTP(503, 0), nil, map[string]string{HeaderAbortPercentage: "100"}, 0, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rr filters.RouteResolver
			if c.perRoute != nil {
				pc, err := factory{}.ParsePerRoute(filters.BuildContext{}, c.perRoute)
				if err != nil {
					t.Fatal(err)
				}
				rr = resolver{route{pc}}
			}
			s := stream(context.Background(), c.headers, rr)
			st := build(t, c.cfg).OnRequest(s)
			if c.wantStatus == 0 {
				if st != filters.Continue || s.Local != nil {
					t.Fatalf("aborted (%+v), want the request to go on", s.Local)
				}
				return
			}
			if st != filters.Stop || s.Local == nil || s.Local.Status != c.wantStatus {
				t.Fatalf("status %v local %+v, want an abort with %d", st, s.Local, c.wantStatus)
			}
			if !strings.Contains(s.ResponseFlags.String(), "FI") {
				t.Errorf("response flags %q lack FI", s.ResponseFlags)
			}
			gotGRPC := -1
			if s.Local.GRPCStatus != nil {
				gotGRPC = *s.Local.GRPCStatus
			}
			if gotGRPC != c.wantGRPC {
				t.Errorf("grpc status %d, want %d", gotGRPC, c.wantGRPC)
			}
		})
	}
}

func TestAbortPercentageIsSampled(t *testing.T) {
	f := build(t, abortHTTP(503, 30))
	aborted := 0
	const n = 20000
	for range n {
		if f.OnRequest(stream(context.Background(), nil, nil)) == filters.Stop {
			aborted++
		}
	}
	if share := float64(aborted) / n; share < 0.27 || share > 0.33 {
		t.Fatalf("aborted %.3f of requests, want about 0.30", share)
	}
}

func delayCfg(d time.Duration) *faultv3.HTTPFault {
	return &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{
		FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)}, Percentage: pct(100)}}
}

func TestDelayThenContinue(t *testing.T) {
	s := stream(context.Background(), nil, nil)
	if st := build(t, delayCfg(time.Millisecond)).OnRequest(s); st != filters.Continue {
		t.Fatalf("delayed request stopped: %+v", s.Local)
	}
	if s.ResponseFlags.String() != "DI" {
		t.Errorf("response flags %q, want DI", s.ResponseFlags)
	}
}

func TestDelayEndsWhenDownstreamGoesAway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := stream(ctx, nil, nil)
	done := make(chan filters.Status)
	go func() { done <- build(t, delayCfg(time.Hour)).OnRequest(s) }()
	cancel()
	if st := <-done; st != filters.Stop || s.Local == nil || s.Local.Status != 499 {
		t.Fatalf("status %v local %+v, want the delay cut short with 499", st, s.Local)
	}
}

func TestMaxActiveFaults(t *testing.T) {
	cfg := delayCfg(time.Hour)
	cfg.MaxActiveFaults = wrapperspb.UInt32(1)
	f := build(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	go func() {
		defer close(first)
		f.OnRequest(stream(ctx, nil, nil))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.active.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first fault never became active")
		}
		time.Sleep(time.Millisecond)
	}
	s := stream(context.Background(), nil, nil)
	if st := f.OnRequest(s); st != filters.Continue || s.ResponseFlags != 0 {
		t.Fatalf("a second fault was injected over max_active_faults=1 (flags %q)", s.ResponseFlags)
	}
	cancel()
	<-first
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  *faultv3.HTTPFault
		want string
	}{
		{"status out of range", abortHTTP(100, 100), "abort.http_status"},
		{"unsupported field", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x"}}}, "headers: not supported yet"},
		{"rate limit unsupported", &faultv3.HTTPFault{ResponseRateLimit: &commonfaultv3.FaultRateLimit{}}, "response_rate_limit: not supported yet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := factory{}.New(filters.BuildContext{}, c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error naming %q", err, c.want)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	f, err := filters.Lookup("anything", TypeURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.PerRoute(); !ok {
		t.Fatal("the fault factory takes no per-route config")
	}
}

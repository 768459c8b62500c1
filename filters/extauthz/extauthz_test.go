package extauthz

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http2"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// authorizer is the decision both test services make: allow when the
// request carries x-ext-authz: allow, sleep when it says sleep, and deny
// otherwise.
type authorizer struct {
	checks atomic.Int64
	last   atomic.Pointer[authv3.CheckRequest]
}

type grpcAuthz struct {
	authv3.UnimplementedAuthorizationServer
	a *authorizer
}

func (g grpcAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	g.a.checks.Add(1)
	g.a.last.Store(req)
	switch req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-ext-authz"] {
	case "allow":
		return &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-user", Value: "alice"}}},
		}}}, nil
	case "sleep":
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
		Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-reason", Value: "no header"}}},
		Body:    "denied by the test authorizer",
	}}}, nil
}

func (a *authorizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.checks.Add(1)
	body, _ := io.ReadAll(r.Body)
	switch r.Header.Get("x-ext-authz") {
	case "allow":
		w.Header().Set("x-authz-user", "alice")
		w.Header().Set("x-authz-path", r.URL.Path)
		w.Header().Set("x-authz-body", string(body))
		w.Header().Set("x-other", "not upstream")
		w.WriteHeader(200)
	case "sleep":
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	case "fail":
		w.WriteHeader(503)
	default:
		w.Header().Set("x-authz-reason", "no header")
		w.WriteHeader(401)
		io.WriteString(w, "denied by the test authorizer")
	}
}

// servers starts the gRPC and HTTP authorizers on loopback; clusters
// "grpc" and "http" of the returned Upstream reach them.
func servers(t *testing.T) (*authorizer, *testUpstream) {
	a := &authorizer{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, grpcAuthz{a: a})
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	h2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	h1 := &http.Transport{}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	return a, &testUpstream{addrs: map[string]string{"grpc": gl.Addr().String(), "http": hl.Addr().String()}, h1: h1, h2: h2}
}

// testUpstream sends a filter's l7 requests with net/http: HTTP/2
// without TLS for an HTTP/2 request, HTTP/1.1 otherwise.
type testUpstream struct {
	addrs  map[string]string
	h1     http.RoundTripper
	h2     http.RoundTripper
	called atomic.Int64
}

func (u *testUpstream) RoundTrip(ctx context.Context, ureq *filters.UpstreamRequest) (*l7.Response, error) {
	u.called.Add(1)
	addr, ok := u.addrs[ureq.Cluster]
	if !ok {
		return nil, &net.OpError{Op: "dial", Err: io.ErrClosedPipe}
	}
	if !ureq.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, ureq.Deadline)
		defer cancel()
	}
	r := ureq.Request
	var body io.Reader = http.NoBody
	if r.Body != nil {
		body = r.Body
	}
	hr, err := http.NewRequestWithContext(ctx, r.Method, "http://"+addr+string(r.Path), body)
	if err != nil {
		return nil, err
	}
	hr.Host = string(r.Authority)
	hr.ContentLength = r.ContentLength
	for _, f := range r.Header.Fields() {
		if string(f.Name) != "content-length" {
			hr.Header.Add(string(f.Name), string(f.Value))
		}
	}
	rt := u.h1
	if r.Proto == l7.HTTP2 {
		rt = u.h2
	}
	resp, err := rt.RoundTrip(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &l7.Response{Status: resp.StatusCode, Body: bytes.NewReader(data), ContentLength: int64(len(data))}
	for k, vs := range resp.Header {
		for _, v := range vs {
			out.Header.Add(strings.ToLower(k), v)
		}
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			out.Trailer.Add(strings.ToLower(k), v)
		}
	}
	// As the waypoint's, the response is the Upstream's again once its
	// body is closed.
	out.Body = &recycledBody{Reader: out.Body, resp: out}
	return out, nil
}

type recycledBody struct {
	io.Reader
	resp *l7.Response
}

func (b *recycledBody) Close() error {
	b.resp.Reset()
	return nil
}

var testStats = prometheus.NewRegistry()

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func build(t testing.TB, js string) *Filter {
	t.Helper()
	pb := &extauthzv3.ExtAuthz{}
	if err := protojson.Unmarshal([]byte(js), pb); err != nil {
		t.Fatal(err)
	}
	f, err := factory{}.New(filters.BuildContext{Name: Name, Stats: filters.NewScope(testStats)}, pb)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const (
	grpcConfig = `{"transportApiVersion":"V3","grpcService":{"envoyGrpc":{"clusterName":"grpc","authority":"ext-authz"},"timeout":"1s"}}`
	httpConfig = `{"transportApiVersion":"V3","httpService":{"serverUri":{"uri":"http://ext-authz","cluster":"http","timeout":"1s"},
		"pathPrefix":"/check","authorizationResponse":{"allowedUpstreamHeaders":{"patterns":[{"prefix":"x-authz-"}]}}},
		"allowedHeaders":{"patterns":[{"exact":"x-ext-authz","ignoreCase":true}]}}`
)

// routeConf is a matched route with the ext_authz per-route config.
type routeConf struct{ cfg any }

func (r *routeConf) Name() string                          { return "r" }
func (r *routeConf) FilterConfig(n string) any             { return r.cfg }
func (r *routeConf) Resolve(*filters.Stream) filters.Route { return r }

// stream makes a request stream through up, with headers as name, value
// pairs, matching a route with per-route config pr (nil: none).
func stream(up filters.Upstream, pr any, path string, header ...string) *filters.Stream {
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("reviews:9080"), Path: []byte(path), Proto: l7.HTTP11, ContentLength: -1}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	down := &filters.Downstream{PeerURI: "spiffe://cluster.local/ns/default/sa/productpage",
		RemoteAddr: netip.MustParseAddrPort("127.0.0.9:4000"), Destination: netip.MustParseAddrPort("10.0.0.1:9080")}
	var res filters.RouteResolver
	if pr != nil {
		res = &routeConf{pr}
	}
	s := filters.NewStream(context.Background(), req, down, res)
	s.Upstream = up
	return s
}

func TestAllowDeny(t *testing.T) {
	a, up := servers(t)
	for _, svc := range []struct{ name, cfg string }{{"grpc", grpcConfig}, {"http", httpConfig}} {
		t.Run(svc.name, func(t *testing.T) {
			f := build(t, svc.cfg)
			okBefore := value(f.stats.ok)
			s := stream(up, nil, "/ext/a", "x-ext-authz", "allow")
			if st := f.OnRequest(s); st != filters.Continue {
				t.Fatalf("allowed request stopped: %+v", s.Local)
			}
			if v := s.Request.Header.GetString("x-authz-user"); v != "alice" {
				t.Errorf("x-authz-user upstream %q, want alice", v)
			}
			if s.Request.Header.Has("x-other") {
				t.Errorf("a header outside allowed_upstream_headers went upstream")
			}
			if svc.name == "http" {
				if v := s.Request.Header.GetString("x-authz-path"); v != "/check/ext/a" {
					t.Errorf("check path %q, want /check/ext/a", v)
				}
			} else {
				hr := a.last.Load().GetAttributes()
				if h := hr.GetRequest().GetHttp(); h.GetPath() != "/ext/a" || h.GetMethod() != "GET" || h.GetHeaders()[":authority"] != "reviews:9080" {
					t.Errorf("check request %v", h)
				}
				if p := hr.GetSource().GetPrincipal(); p != "spiffe://cluster.local/ns/default/sa/productpage" {
					t.Errorf("source principal %q", p)
				}
			}
			if got := value(f.stats.ok); got != okBefore+1 {
				t.Errorf("ok counter %v, want %v", got, okBefore+1)
			}

			s = stream(up, nil, "/ext/a")
			if st := f.OnRequest(s); st != filters.Stop {
				t.Fatal("denied request went on")
			}
			if s.Local.Status != 401 || s.Local.Body != "denied by the test authorizer" || s.Local.Header.GetString("x-authz-reason") != "no header" {
				t.Errorf("denial %d %q %v, want the service's", s.Local.Status, s.Local.Body, s.Local.Header.Fields())
			}
			if s.ResponseFlags&filters.FlagUAEX == 0 || s.ResponseCodeDetails != DetailsDenied {
				t.Errorf("flags %v details %q", s.ResponseFlags, s.ResponseCodeDetails)
			}
		})
	}
}

// TestErrors: an unreachable service, a timeout and (HTTP) a 5xx answer
// status_on_error, or go on under failure_mode_allow.
func TestErrors(t *testing.T) {
	_, up := servers(t)
	for _, c := range []struct {
		name, cfg string
		header    []string
	}{
		{"unreachable", strings.Replace(grpcConfig, `"clusterName":"grpc"`, `"clusterName":"nowhere"`, 1), nil},
		{"grpc timeout", strings.Replace(grpcConfig, `"1s"`, `"0.100s"`, 1), []string{"x-ext-authz", "sleep"}},
		{"http timeout", strings.Replace(httpConfig, `"1s"`, `"0.100s"`, 1), []string{"x-ext-authz", "sleep"}},
		{"http 5xx", httpConfig, []string{"x-ext-authz", "fail"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := build(t, c.cfg)
			start := time.Now()
			s := stream(up, nil, "/", c.header...)
			if st := f.OnRequest(s); st != filters.Stop || s.Local.Status != 403 || s.ResponseCodeDetails != DetailsError {
				t.Fatalf("got %v %+v, want 403 %s", st, s.Local, DetailsError)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("the check took %v", d)
			}
			cfg := strings.Replace(c.cfg, `"transportApiVersion":"V3"`, `"transportApiVersion":"V3","statusOnError":{"code":503}`, 1)
			if s = stream(up, nil, "/", c.header...); build(t, cfg).OnRequest(s) != filters.Stop || s.Local.Status != 503 {
				t.Errorf("status_on_error 503: %+v", s.Local)
			}
			cfg = strings.Replace(c.cfg, `"transportApiVersion":"V3"`, `"transportApiVersion":"V3","failureModeAllow":true,"failureModeAllowHeaderAdd":true`, 1)
			fa := build(t, cfg)
			before := value(fa.stats.failureModeAllowed)
			if s = stream(up, nil, "/", c.header...); fa.OnRequest(s) != filters.Continue || s.Request.Header.GetString(HeaderFailureModeAllowed) != "true" {
				t.Errorf("failure_mode_allow: %+v %v", s.Local, s.Request.Header.Fields())
			}
			if got := value(fa.stats.failureModeAllowed); got != before+1 {
				t.Errorf("failure_mode_allowed %v, want %v", got, before+1)
			}
		})
	}
}

// TestNotChecked: a route with the filter disabled, or a request the
// filter_enabled_metadata does not select, is not checked.
func TestNotChecked(t *testing.T) {
	a, up := servers(t)
	f := build(t, grpcConfig)
	pr, err := factory{}.ParsePerRoute(filters.BuildContext{}, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if s := stream(up, pr, "/ext/a"); f.OnRequest(s) != filters.Continue || a.checks.Load() != 0 {
		t.Errorf("disabled route: checks %d, local %+v", a.checks.Load(), s.Local)
	}

	fm := build(t, strings.Replace(grpcConfig, `"transportApiVersion":"V3"`, `"transportApiVersion":"V3","filterEnabledMetadata":{"filter":"envoy.filters.http.rbac",
		"path":[{"key":"istio_ext_authz_shadow_effective_policy_id"}],"value":{"stringMatch":{"prefix":"istio-ext-authz-grpc"}}}`, 1))
	s := stream(up, nil, "/other")
	if fm.OnRequest(s) != filters.Continue || a.checks.Load() != 0 {
		t.Errorf("unselected request: checks %d", a.checks.Load())
	}
	s = stream(up, nil, "/ext/a")
	s.SetMetadataString("envoy.filters.http.rbac", "istio_ext_authz_shadow_effective_policy_id", "istio-ext-authz-grpc-ns[x]-policy[p]-rule[0]")
	if fm.OnRequest(s) != filters.Stop || a.checks.Load() != 1 {
		t.Errorf("selected request: checks %d, local %+v", a.checks.Load(), s.Local)
	}

	// context_extensions from the route reach the gRPC service.
	pr, err = factory{}.ParsePerRoute(filters.BuildContext{}, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{
		CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: map[string]string{"k": "v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	f.OnRequest(stream(up, pr, "/ext/a", "x-ext-authz", "allow"))
	if got := a.last.Load().GetAttributes().GetContextExtensions()["k"]; got != "v" {
		t.Errorf("context extension %q", got)
	}
}

// TestRequestBody: with_request_body sends the body in the check, and the
// upstream still gets all of it; a body past max_request_bytes is refused
// with a 413 unless allow_partial_message.
func TestRequestBody(t *testing.T) {
	a, up := servers(t)
	cfg := strings.Replace(grpcConfig, `"transportApiVersion":"V3"`, `"transportApiVersion":"V3","withRequestBody":{"maxRequestBytes":8}`, 1)
	f := build(t, cfg)
	s := stream(up, nil, "/", "x-ext-authz", "allow")
	s.Request.Body, s.Request.ContentLength = strings.NewReader("hello"), 5
	if f.OnRequest(s) != filters.Continue {
		t.Fatalf("%+v", s.Local)
	}
	if got := a.last.Load().GetAttributes().GetRequest().GetHttp().GetBody(); got != "hello" {
		t.Errorf("check body %q", got)
	}
	if b, _ := io.ReadAll(s.Request.Body); string(b) != "hello" {
		t.Errorf("upstream body %q", b)
	}
	s = stream(up, nil, "/", "x-ext-authz", "allow")
	s.Request.Body = strings.NewReader("0123456789abcdef")
	if f.OnRequest(s) != filters.Stop || s.Local.Status != 413 {
		t.Errorf("long body: %+v", s.Local)
	}
	fp := build(t, strings.Replace(cfg, `"maxRequestBytes":8`, `"maxRequestBytes":8,"allowPartialMessage":true`, 1))
	s = stream(up, nil, "/", "x-ext-authz", "allow")
	s.Request.Body = strings.NewReader("0123456789abcdef")
	if fp.OnRequest(s) != filters.Continue {
		t.Fatalf("partial: %+v", s.Local)
	}
	if got := a.last.Load().GetAttributes().GetRequest().GetHttp().GetBody(); got != "01234567" {
		t.Errorf("partial check body %q", got)
	}
	if b, _ := io.ReadAll(s.Request.Body); string(b) != "0123456789abcdef" {
		t.Errorf("upstream body %q", b)
	}
}

// TestConfigRefused: what is not implemented is refused, naming the field.
func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		pb   *extauthzv3.ExtAuthz
		want string
	}{
		{&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3, IncludePeerCertificate: true,
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "c"}}}}},
			"include_peer_certificate: not supported yet"},
		{&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3,
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{}}}}},
			"grpc_service.google_grpc: not supported yet"},
		{&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3, ChargeClusterResponseStats: wrapperspb.Bool(true),
			Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{ServerUri: &corev3.HttpUri{Uri: "x", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second)}}}},
			"charge_cluster_response_stats: not supported yet"},
		{&extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3}, "one of grpc_service or http_service"},
	} {
		_, err := factory{}.New(filters.BuildContext{}, c.pb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

// meta is a connection's dynamic metadata for the network filter.
type meta map[string]string

func (m meta) MetadataString(filter, key string) (string, bool) {
	v, ok := m[filter+"/"+key]
	return v, ok
}

// TestNetwork: the network filter checks a connection its metadata selects
// (the gRPC test service denies it: no HTTP attributes), skips the others,
// and under failure_mode_allow lets a connection through when the service
// cannot be reached.
func TestNetwork(t *testing.T) {
	a, up := servers(t)
	pb := &netextauthzv3.ExtAuthz{}
	if err := protojson.Unmarshal([]byte(`{"statPrefix":"tcp.","transportApiVersion":"V3","grpcService":{"envoyGrpc":{"clusterName":"grpc"},"timeout":"1s"},
		"filterEnabledMetadata":{"filter":"envoy.filters.network.rbac","path":[{"key":"istio_ext_authz_shadow_effective_policy_id"}],
		"value":{"stringMatch":{"prefix":"istio-ext-authz"}}}}`), pb); err != nil {
		t.Fatal(err)
	}
	n, err := NewNetwork(filters.BuildContext{Stats: filters.NewScope(testStats)}, pb)
	if err != nil {
		t.Fatal(err)
	}
	upf := func() filters.Upstream { return up }
	down := &filters.Downstream{PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", RemoteAddr: netip.MustParseAddrPort("127.0.0.9:4000")}
	if ok, _ := n.Allow(context.Background(), upf, down, meta{}); !ok || a.checks.Load() != 0 {
		t.Errorf("unselected connection: %v, %d checks", ok, a.checks.Load())
	}
	sel := meta{"envoy.filters.network.rbac/istio_ext_authz_shadow_effective_policy_id": "istio-ext-authz-p"}
	if ok, details := n.Allow(context.Background(), upf, down, sel); ok || details != DetailsDenied || a.checks.Load() != 1 {
		t.Errorf("selected connection: %v %q, %d checks", ok, details, a.checks.Load())
	}
	if p := a.last.Load().GetAttributes().GetSource().GetPrincipal(); p != down.PeerURI {
		t.Errorf("source principal %q", p)
	}
	pb.GrpcService.GetEnvoyGrpc().ClusterName = "nowhere"
	pb.FailureModeAllow = true
	if n, err = NewNetwork(filters.BuildContext{}, pb); err != nil {
		t.Fatal(err)
	}
	if ok, _ := n.Allow(context.Background(), upf, down, sel); !ok {
		t.Errorf("failure_mode_allow: refused")
	}
	pb.FailureModeAllow = false
	if n, err = NewNetwork(filters.BuildContext{}, pb); err != nil {
		t.Fatal(err)
	}
	if ok, details := n.Allow(context.Background(), upf, down, sel); ok || !strings.HasPrefix(details, DetailsError) {
		t.Errorf("unreachable: %v %q", ok, details)
	}
	pb.IncludePeerCertificate = true
	if _, err := NewNetwork(filters.BuildContext{}, pb); err == nil || !strings.Contains(err.Error(), "include_peer_certificate") {
		t.Errorf("include_peer_certificate: %v", err)
	}
}

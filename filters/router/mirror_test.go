package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

const mirrorRoutes = `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /retry}
    route:
      cluster: primary
      retry_policy: {retry_on: 5xx, num_retries: 2, retry_back_off: {base_interval: 0.001s}}
      request_mirror_policies: [{cluster: mirror}]
  - match: {prefix: /never}
    route:
      cluster: primary
      request_mirror_policies: [{cluster: mirror, runtime_fraction: {default_value: {numerator: 0}}}]
  - match: {prefix: /two}
    route:
      cluster: primary
      request_mirror_policies: [{cluster: mirror}, {cluster: mirror2, disable_shadow_host_suffix_append: true}]
  - match: {prefix: /header}
    route:
      cluster: primary
      request_mirror_policies: [{cluster_header: x-mirror-to}]
  - match: {prefix: /none}
    route: {cluster: primary}
  - match: {prefix: /}
    request_headers_to_add: [{header: {key: x-added, value: "yes"}}]
    route:
      cluster: primary
      request_mirror_policies: [{cluster: mirror}]
`

// seen is one request an upstream received.
type seen struct {
	cluster, method, authority, path, added string
	body                                    []byte
	trailer                                 string
}

// mirrorUpstream answers the primary cluster with primary and every other
// cluster with mirror, recording what each received (the body read to
// its end first).
type mirrorUpstream struct {
	primary, mirror func(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error)

	mu   sync.Mutex
	got  []seen
	seen chan struct{} // a receive per request, when not nil
}

func (u *mirrorUpstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	ctx, cancel := withDeadline(ctx, req)
	defer cancel()
	r := req.Request
	sn := seen{cluster: req.Cluster, method: r.Method, authority: string(r.Authority), path: string(r.Path),
		added: r.Header.GetString("x-added")}
	if r.Body != nil {
		sn.body, _ = io.ReadAll(r.Body)
	}
	sn.trailer = r.Trailer.GetString("x-trailer")
	u.mu.Lock()
	u.got = append(u.got, sn)
	u.mu.Unlock()
	if u.seen != nil {
		u.seen <- struct{}{}
	}
	fn := u.mirror
	if req.Cluster == "primary" {
		fn = u.primary
	}
	if fn == nil {
		return respond(200), nil
	}
	return fn(ctx, req)
}

func (u *mirrorUpstream) received(cluster string) []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seen
	for _, s := range u.got {
		if s.cluster == cluster {
			out = append(out, s)
		}
	}
	return out
}

// newMirrorRouter builds a router counting into reg; closed by the test's
// end.
func newMirrorRouter(t *testing.T, reg *prometheus.Registry) *Router {
	t.Helper()
	var ctx filters.BuildContext
	if reg != nil {
		ctx.Stats = filters.NewScope(reg)
	}
	r, err := factory{}.New(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func serve(r *Router, up filters.Upstream, req *l7.Request) *filters.Stream {
	s := filters.NewStream(context.Background(), req, &filters.Downstream{}, mirrorTable())
	s.Upstream = up
	filters.NewChain(r).Run(s)
	s.End()
	return s
}

var mirrorTable = sync.OnceValue(func() *route.Table {
	tb, err := route.Compile(mustParse(mirrorRoutes), route.CompileOptions{})
	if err != nil {
		panic(err)
	}
	return tb
})

func mustParse(y string) *routev3.RouteConfiguration {
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		panic(err)
	}
	var rc routev3.RouteConfiguration
	if err := protojson.Unmarshal(j, &rc); err != nil {
		panic(err)
	}
	return &rc
}

// mirrored returns the count of waypoint_router_mirror_requests_total for
// cluster and result.
func mirrored(t *testing.T, reg *prometheus.Registry, cluster, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != mirrorMetricsName {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cluster_name"] == cluster && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestMirrorGetsACopy(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newMirrorRouter(t, reg)
	release := make(chan struct{})
	up := &mirrorUpstream{mirror: func(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
		<-release // the stream is over when the mirror answers
		return respond(200), nil
	}}
	req := post("/orders?id=1", []byte("the body"))
	req.Authority = []byte("reviews.ns.svc.cluster.local:9080")
	s := serve(r, up, req)
	if s.Response == nil || s.Response.Status != 200 {
		t.Fatalf("primary: local %+v response %+v", s.Local, s.Response)
	}
	// The codec reuses the request for the next one.
	req.Header.Reset()
	req.Path = append(req.Path[:0], "/reused"...)
	req.Authority = append(req.Authority[:0], "reused"...)
	close(release)
	r.Close()
	p, m := up.received("primary"), up.received("mirror")
	if len(p) != 1 || string(p[0].body) != "the body" || p[0].authority != "reviews.ns.svc.cluster.local:9080" {
		t.Errorf("primary got %+v", p)
	}
	want := seen{cluster: "mirror", method: "POST", authority: "reviews.ns.svc.cluster.local-shadow:9080",
		path: "/orders?id=1", added: "yes", body: []byte("the body")}
	if len(m) != 1 || m[0].method != want.method || m[0].authority != want.authority || m[0].path != want.path ||
		m[0].added != want.added || !bytes.Equal(m[0].body, want.body) {
		t.Errorf("mirror got %+v, want %+v", m, want)
	}
	if n := mirrored(t, reg, "mirror", "ok"); n != 1 {
		t.Errorf("counted %v ok mirrors", n)
	}
}

func TestMirrorWithoutBodyAndTwoPolicies(t *testing.T) {
	r := newMirrorRouter(t, nil)
	up := &mirrorUpstream{}
	s := serve(r, up, get("/two"))
	if s.Response == nil || s.Response.Status != 200 {
		t.Fatalf("primary: %+v", s.Local)
	}
	r.Close()
	if m := up.received("mirror"); len(m) != 1 || m[0].authority != "svc-shadow" || m[0].body != nil {
		t.Errorf("mirror got %+v", m)
	}
	if m := up.received("mirror2"); len(m) != 1 || m[0].authority != "svc" {
		t.Errorf("mirror2 (disable_shadow_host_suffix_append) got %+v", m)
	}
}

func TestMirrorClusterHeader(t *testing.T) {
	r := newMirrorRouter(t, nil)
	up := &mirrorUpstream{}
	serve(r, up, get("/header"))
	req := get("/header")
	req.Header.Set("x-mirror-to", "chosen")
	serve(r, up, req)
	r.Close()
	if got := len(up.got); got != 3 {
		t.Errorf("%d requests, want 2 primaries and 1 mirror", got)
	}
	if m := up.received("chosen"); len(m) != 1 {
		t.Errorf("mirror to the header's cluster: %+v", m)
	}
}

func TestMirrorBodyWithRetriesAndTrailers(t *testing.T) {
	r := newMirrorRouter(t, nil)
	tries := 0
	up := &mirrorUpstream{primary: func(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
		tries++
		if tries == 1 {
			return respond(503), nil
		}
		return respond(200), nil
	}}
	req := post("/retry", []byte(strings.Repeat("x", 100_000)))
	req.Body = &trailing{r: req.Body, req: req}
	s := serve(r, up, req)
	if s.Response == nil || s.Response.Status != 200 || tries != 2 {
		t.Fatalf("primary: %d tries, %+v", tries, s.Local)
	}
	r.Close()
	for _, p := range up.received("primary") {
		if len(p.body) != 100_000 {
			t.Errorf("a primary try got %d bytes", len(p.body))
		}
	}
	if m := up.received("mirror"); len(m) != 1 || len(m[0].body) != 100_000 || m[0].trailer != "t" {
		t.Errorf("mirror got %d requests: %+v", len(m), m)
	}
}

// trailing sets the request's trailer x-trailer: t at the end of the body,
// as a codec does.
type trailing struct {
	r   io.Reader
	req *l7.Request
}

func (t *trailing) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF {
		t.req.Trailer.Set("x-trailer", "t")
	}
	return n, err
}

func TestMirrorNeverSlowsOrFailsThePrimary(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newMirrorRouter(t, reg)
	hung := make(chan struct{}, 10)
	up := &mirrorUpstream{mirror: func(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
		if string(req.Request.Path) == "/fail" {
			return nil, status.New(status.ConnectFailure, errors.New("refused"))
		}
		hung <- struct{}{}
		<-ctx.Done() // the mirror hangs until Close
		return nil, status.New(status.UpstreamReset, ctx.Err())
	}}
	start := time.Now()
	for i := 0; i < 3; i++ {
		s := serve(r, up, post("/hang", []byte("b")))
		if s.Response == nil || s.Response.Status != 200 {
			t.Fatalf("primary with a hanging mirror: %+v", s.Local)
		}
		<-hung
	}
	s := serve(r, up, get("/fail"))
	if s.Response == nil || s.Response.Status != 200 {
		t.Fatalf("primary with a failing mirror: %+v", s.Local)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the primaries took %v", d)
	}
	if s.Attempts != 1 || s.UpstreamCluster != "primary" {
		t.Errorf("the stream records %d tries, cluster %q: the mirror is not a try", s.Attempts, s.UpstreamCluster)
	}
	r.Close() // ends the hanging mirrors (goleak checks)
	if n := mirrored(t, reg, "mirror", "failed"); n != 4 {
		t.Errorf("counted %v failed mirrors, want 4", n)
	}
}

func TestMirrorFractionZero(t *testing.T) {
	r := newMirrorRouter(t, nil)
	up := &mirrorUpstream{}
	for i := 0; i < 200; i++ {
		serve(r, up, get("/never"))
	}
	r.Close()
	if m := up.received("mirror"); len(m) != 0 {
		t.Errorf("a 0%% policy mirrored %d requests", len(m))
	}
	serve(r, up, get("/none"))
	if len(up.got) != 201 {
		t.Errorf("%d requests", len(up.got))
	}
}

func TestMirrorCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newMirrorRouter(t, reg)
	up := &mirrorUpstream{mirror: func(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	for i := 0; i < MaxMirrors+10; i++ {
		if s := serve(r, up, get("/")); s.Response == nil {
			t.Fatalf("primary %d: %+v", i, s.Local)
		}
	}
	if n := mirrored(t, reg, "mirror", "overflow"); n != 10 {
		t.Errorf("counted %v overflows, want 10", n)
	}
	r.Close()
	if m := up.received("mirror"); len(m) != MaxMirrors {
		t.Errorf("%d mirrors sent, want %d", len(m), MaxMirrors)
	}
	if len(r.mirrors.slots) != 0 {
		t.Errorf("%d slots still held", len(r.mirrors.slots))
	}
	// After Close, the router still serves, without mirrors.
	if s := serve(r, up, get("/")); s.Response == nil || len(up.received("mirror")) != MaxMirrors {
		t.Errorf("after Close: %+v", s.Local)
	}
}

func TestMirrorBodyBounds(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newMirrorRouter(t, reg)
	up := &mirrorUpstream{}
	big := bytes.Repeat([]byte("y"), MirrorBodyLimit+1)
	if s := serve(r, up, post("/", big)); s.Response == nil {
		t.Fatalf("primary: %+v", s.Local)
	}
	// A primary that answers without reading the body: the stream ends
	// before the body, and the mirror with it.
	serve(r, skipBody{}, post("/", []byte("unread")))
	r.Close()
	if p := up.received("primary"); len(p) != 1 || len(p[0].body) != len(big) {
		t.Errorf("primary got %d requests", len(p))
	}
	if m := up.received("mirror"); len(m) != 0 {
		t.Errorf("mirrored %d requests", len(m))
	}
	if a, b := mirrored(t, reg, "mirror", "body_too_large"), mirrored(t, reg, "mirror", "incomplete"); a != 1 || b != 1 {
		t.Errorf("counted %v too large, %v incomplete", a, b)
	}
	if len(r.mirrors.slots) != 0 {
		t.Errorf("%d slots still held", len(r.mirrors.slots))
	}
}

// skipBody answers without reading the request body.
type skipBody struct{}

func (skipBody) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	return respond(200), nil
}

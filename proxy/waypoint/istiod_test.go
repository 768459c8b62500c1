package waypoint

// This file replays the xDS istiod sends a waypoint (xds/testdata/istiod,
// xds/testdata/istiod/reviews) over ADS end to end through HBONE.
// It owns the fixture's pod addresses, 127.10.0.11 and 127.10.0.12 (each
// pod's app on 9080/9090/9300 and its ztunnel on 15008), and the VIP
// 127.10.0.10: no other test package binds them. The waypoint, the xDS
// server and the clients' ztunnels use 127.0.71.0/24.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

const (
	fixtureVIP = "127.10.0.10"
	podV1      = "127.10.0.11"
	podV2      = "127.10.0.12"
	wpAddr     = "127.0.71.5:15008"
	adminAddr  = "127.0.71.5:15000"
	xdsAddr    = "127.0.71.1:15010"
)

// withDirectChains adds to main_internal's matcher what istiod writes when
// workloads (not only the service) use the waypoint: the pods' addresses,
// matched by protocol (http_inspector's ApplicationProtocolInput) to
// direct-http and direct-tcp. istiod then drops the http_inspector's
// filter_disabled, since any port of a pod may be reached.
func withDirectChains(t *testing.T, r *xds.Resources) *xds.Resources {
	t.Helper()
	for _, l := range r.Listeners {
		if l.GetName() != "main_internal" {
			continue
		}
		tree := l.GetFilterChainMatcher().GetMatcherTree()
		var ipm xdsmatcherv3.IPMatcher
		if err := tree.GetCustomMatch().GetTypedConfig().UnmarshalTo(&ipm); err != nil {
			t.Fatal(err)
		}
		chain := func(name string) *xdsmatcherv3.Matcher_OnMatch {
			a, _ := anypb.New(wrapperspb.String(name))
			return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
				Action: &xdscorev3.TypedExtensionConfig{Name: name, TypedConfig: a}}}
		}
		in, _ := anypb.New(&networkinputsv3.ApplicationProtocolInput{})
		ipm.RangeMatchers = append(ipm.RangeMatchers, &xdsmatcherv3.IPMatcher_IPRangeMatcher{
			Ranges: []*xdscorev3.CidrRange{
				{AddressPrefix: podV1, PrefixLen: wrapperspb.UInt32(32)},
				{AddressPrefix: podV2, PrefixLen: wrapperspb.UInt32(32)},
			},
			OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: &xdsmatcherv3.Matcher{
				MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
					Input: &xdscorev3.TypedExtensionConfig{Name: "application-protocol", TypedConfig: in},
					TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{
						Map: map[string]*xdsmatcherv3.Matcher_OnMatch{"'h2c'": chain("direct-http"), "'http/1.1'": chain("direct-http")}}},
				}},
				OnNoMatch: chain("direct-tcp"),
			}}},
		})
		a, err := anypb.New(&ipm)
		if err != nil {
			t.Fatal(err)
		}
		tree.GetCustomMatch().TypedConfig = a
		for _, lf := range l.GetListenerFilters() {
			lf.FilterDisabled = nil
		}
	}
	return r
}

// dialGRPC opens a plaintext gRPC client to addr (a source ztunnel's
// listener) and a 10 s deadline for its calls, both ended with the test.
func dialGRPC(t *testing.T, addr string) (*grpc.ClientConn, context.Context) {
	t.Helper()
	gc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return gc, ctx
}

// pod is one fixture workload: its apps and its ztunnel.
type pod struct {
	version  string
	hits     sync.Map     // path -> *atomic.Int64
	requests atomic.Int64 // HTTP requests, every path
	tcpConns atomic.Int64 // connections to the TCP echo

	mu       sync.Mutex
	lastGRPC string // how the HTTP app saw the last gRPC request: proto, headers, body
}

func (p *pod) hit(path string) int64 {
	v, _ := p.hits.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64).Add(1)
}

func (p *pod) count(path string) int64 {
	v, ok := p.hits.Load(path)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// serveHTTP answers who it is; /v1/flaky fails its first try with 503,
// /v1/slow answers after 5 s.
func (p *pod) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	n := p.hit(r.URL.Path)
	if r.Header.Get("content-type") == "application/grpc" {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.lastGRPC = fmt.Sprintf("%s %s %s te=%s length=%d chunked=%v body=%x", r.Proto, r.Method, r.URL.Path,
			r.Header.Get("te"), r.ContentLength, len(r.TransferEncoding) > 0, body)
		p.mu.Unlock()
	}
	switch r.URL.Path {
	case "/v1/flaky":
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	case "/v1/slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprintf(w, "version=%s path=%s", p.version, r.URL.Path)
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startPod runs the pod's HTTP app (9080), gRPC health (9090), TCP echo
// (9300) and its ztunnel on :15008 with identity default/reviews.
func startPod(t *testing.T, ip, version string, src *certs.Source) *pod {
	p := &pod{version: version}
	hs := &http.Server{Handler: http.HandlerFunc(p.serveHTTP)}
	hln := listen(t, ip+":9080")
	go hs.Serve(hln)
	t.Cleanup(func() { hs.Close() })

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	gln := listen(t, ip+":9090")
	go gs.Serve(gln)
	t.Cleanup(gs.Stop)

	eln := listen(t, ip+":9300")
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := eln.Accept()
			if err != nil {
				return
			}
			p.tcpConns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s echo %s", version, line)
			}()
		}
	}()
	t.Cleanup(func() { eln.Close(); wg.Wait() })

	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: src.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: []netip.Addr{netip.MustParseAddr(ip)}, Log: quietLog()}, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	zln := listen(t, ip+":15008")
	go zt.Serve(zln)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		zt.Shutdown(ctx)
	})
	return p
}

// client is a source ztunnel for one identity: a plaintext listener per
// authority, carried to the waypoint over HBONE.
//
// Its local addresses take ports from one counter for the whole package, so that no test
// listens where an earlier one did (a connect to an address whose last connections are still
// closing can be reset).
type client struct {
	t     *testing.T
	pool  *hbone.Pool
	src   *certs.Source
	base  string
	addrs map[string]string // authority -> a local address of via
}

var clientPorts atomic.Int32

func newClient(t *testing.T, dir string, id spiffe.ID, base string) *client {
	src, err := certs.NewSource(certs.IdentityDir(dir, id), certs.SourceOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	pool := hbone.NewPool(hbone.PoolConfig{Logger: quietLog()})
	t.Cleanup(func() { pool.Close(); src.Close() })
	return &client{t: t, pool: pool, src: src, base: base}
}

// to returns a local address whose connections reach authority through
// the waypoint.
func (c *client) to(authority string) string {
	ln := listen(c.t, fmt.Sprintf("%s:%d", c.base, 20000+clientPorts.Add(1)))
	wp := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"}
	s := &ztunnel.Source{Pool: c.pool, Via: netip.MustParseAddrPort(wpAddr), Authority: authority,
		PeerKey: wp.String(), TLS: c.src.ClientTLSConfig(certs.PeerExpectation{ID: wp}), Log: quietLog()}
	go s.Serve(ln)
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ln.Close()
		s.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// via is to, one local address per authority.
func (c *client) via(authority string) string {
	if a, ok := c.addrs[authority]; ok {
		return a
	}
	if c.addrs == nil {
		c.addrs = map[string]string{}
	}
	c.addrs[authority] = c.to(authority)
	return c.addrs[authority]
}

func get(t *testing.T, hc *http.Client, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fixtureIDs are the fixture's identities, each with its certificate from
// the dev mesh CA: the waypoint, the reviews pods, and the callers the
// AuthorizationPolicies tell apart.
var fixtureIDs = map[string]spiffe.ID{
	"waypoint":    {TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"},
	"reviews":     {TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"},
	"productpage": {TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "productpage"},
	"ratings":     {TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"},
	// productpage's service account name in another namespace.
	"other/productpage": {TrustDomain: "cluster.local", Namespace: "other", ServiceAccount: "productpage"},
	"prometheus":        {TrustDomain: "cluster.local", Namespace: "monitoring", ServiceAccount: "prometheus"},
	"grafana":           {TrustDomain: "cluster.local", Namespace: "monitoring", ServiceAccount: "grafana"},
	// A service account named like the monitoring namespace.
	"default/monitoring": {TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "monitoring"},
}

// fixtureEnv is the reviews fixture served over ADS: the two pods (apps
// and ztunnels), the control plane, the waypoint, and a source ztunnel
// per calling identity. Everything ends with the test.
type fixtureEnv struct {
	t       *testing.T
	dir     string // the mesh CA and the identities' certificates
	v1, v2  *pod
	cp      *xdsserver.Server
	w       *Waypoint
	clients map[string]*client
}

// startFixture serves res over ADS (delta or state of the world) to a
// waypoint and waits for it to take the first version.
func startFixture(t *testing.T, res *xds.Resources, delta bool) *fixtureEnv {
	t.Helper()
	e := &fixtureEnv{t: t, dir: t.TempDir(), clients: map[string]*client{}}
	var ids []spiffe.ID
	for _, id := range fixtureIDs {
		ids = append(ids, id)
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	podSrc, err := certs.NewSource(certs.IdentityDir(e.dir, fixtureIDs["reviews"]), certs.SourceOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { podSrc.Close() })
	e.v1 = startPod(t, podV1, "v1", podSrc)
	e.v2 = startPod(t, podV2, "v2", podSrc)

	xdsDir := t.TempDir()
	xdstest.WriteDir(t, xdsDir, res)
	if e.cp, err = xdsserver.New(xdsDir, quietLog()); err != nil {
		t.Fatal(err)
	}
	cpDone := make(chan struct{})
	ln := listen(t, xdsAddr)
	go func() { defer close(cpDone); e.cp.Serve(ln) }()
	t.Cleanup(func() { e.cp.Close(); <-cpDone })

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.w, err = Start(Options{
		CertDir:   certs.IdentityDir(e.dir, fixtureIDs["waypoint"]),
		HBONEAddr: wpAddr,
		AdminAddr: adminAddr,
		ADS: &ADSOptions{Client: adsclient.Config{Conn: conn, Delta: delta,
			Node: &corev3.Node{Id: "waypoint~127.0.71.5~waypoint-a.default~default.svc.cluster.local"}}},
		Logger: quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.w.Shutdown(context.Background()) })
	return e
}

// client returns the source ztunnel of the named identity (fixtureIDs).
func (e *fixtureEnv) client(who string) *client {
	if c := e.clients[who]; c != nil {
		return c
	}
	id, ok := fixtureIDs[who]
	if !ok {
		e.t.Fatalf("no identity %q", who)
	}
	c := newClient(e.t, e.dir, id, fmt.Sprintf("127.0.71.%d", 20+len(e.clients)))
	e.clients[who] = c
	return c
}

// push serves res as the next version and waits until the waypoint has
// applied its listeners and clusters.
func (e *fixtureEnv) push(res *xds.Resources) string {
	e.t.Helper()
	if err := e.cp.Push(res); err != nil {
		e.t.Fatal(err)
	}
	v := e.cp.Version()
	deadline := time.Now().Add(10 * time.Second)
	for e.w.Snapshot().Version != v+"/"+v {
		if time.Now().After(deadline) {
			e.t.Fatalf("version %s not applied within 10 s: the waypoint has %s", v, e.w.Snapshot().Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return v
}

// withoutAuthorizationPolicies is what istiod sends once the fixture's
// AuthorizationPolicies are deleted: the same listeners without their RBAC
// filters, HTTP or network (istiod's authz builder emits none when no
// policy applies).
func withoutAuthorizationPolicies(t *testing.T, r *xds.Resources) *xds.Resources {
	t.Helper()
	const hcmName = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			var keep []*listenerv3.Filter
			for _, f := range fc.GetFilters() {
				switch f.GetTypedConfig().MessageName() {
				case "envoy.extensions.filters.network.rbac.v3.RBAC":
					continue
				case hcmName:
					var hcm hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					var hf []*hcmv3.HttpFilter
					for _, h := range hcm.GetHttpFilters() {
						if h.GetTypedConfig().MessageName() != "envoy.extensions.filters.http.rbac.v3.RBAC" {
							hf = append(hf, h)
						}
					}
					hcm.HttpFilters = hf
					a, err := anypb.New(&hcm)
					if err != nil {
						t.Fatal(err)
					}
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
				}
				keep = append(keep, f)
			}
			fc.Filters = keep
		}
	}
	return r
}

// tcpEcho sends a line on a connection to addr and returns all it reads
// back until the stream ends. A connection the client's ztunnel resets
// (its CONNECT refused) reads as nothing, even when the reset comes so
// fast that the dial itself reports it (the stand-in accepts, its CONNECT
// is answered 503 and it resets before the dialer has looked at the
// socket's state).
func tcpEcho(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "ping\n")
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestIstiodFixtureOverADS(t *testing.T) {
	// The control plane serves the whole fixture (with the pod-addressed
	// chains reachable), its RBAC filters included: productpage is allowed
	// GET /api/* and /reviews/* on the service, nothing else.
	res := withDirectChains(t, xdstest.Reviews(t))
	e := startFixture(t, res, false)
	v1, v2 := e.v1, e.v2
	pp := e.client("productpage")
	hc := &http.Client{Timeout: 10 * time.Second}
	svc := "http://" + pp.to(fixtureVIP+":9080")

	t.Run("end-user jason goes to v2", func(t *testing.T) {
		for range 20 {
			if code, body := get(t, hc, svc+"/reviews/1", map[string]string{"end-user": "jason"}); code != 200 || !strings.HasPrefix(body, "version=v2") {
				t.Fatalf("got %d %q", code, body)
			}
		}
	})
	t.Run("80/20 split with the /api/ to /v1/ rewrite", func(t *testing.T) {
		n1, n2 := 0, 0
		for range 200 {
			code, body := get(t, hc, svc+"/api/split", nil)
			switch {
			case code != 200 || !strings.Contains(body, "path=/v1/split"):
				t.Fatalf("got %d %q", code, body)
			case strings.HasPrefix(body, "version=v1"):
				n1++
			default:
				n2++
			}
		}
		if n1 < 130 || n1 > 190 {
			t.Errorf("v1 got %d of 200, v2 %d: want about 160", n1, n2)
		}
		t.Logf("split: v1 %d, v2 %d", n1, n2)
	})
	// The first try of /v1/flaky on a pod answers 503: retried (5xx),
	// on the same pod (its subset has one), the second try answers.
	t.Run("retries on 5xx", func(t *testing.T) {
		code, body := get(t, hc, svc+"/api/flaky", nil)
		tries := v1.count("/v1/flaky") + v2.count("/v1/flaky")
		if code != 200 || !strings.HasSuffix(body, "path=/v1/flaky") || tries != 2 {
			t.Errorf("got %d %q after %d tries; want 200 after one retry", code, body, tries)
		}
	})
	// /v1/slow answers after 5 s: each try ends at its 1 s per_try_timeout
	// and is retried (up to 3 retries), until the route's 3 s timeout
	// ends it with a 504. Without the route timeout there would be 4 tries;
	// a try starts at 0, 1 and 2 s, never at 3.
	t.Run("3s timeout with 1s per try", func(t *testing.T) {
		code, _ := get(t, hc, svc+"/api/slow", nil)
		tries := v1.count("/v1/slow") + v2.count("/v1/slow")
		if code != http.StatusGatewayTimeout || tries < 2 || tries > 3 {
			t.Errorf("got %d after %d tries; want 504 after 2 or 3 tries (per-try timeouts, then the route's)", code, tries)
		}
	})
	// The RBAC filters come before the fault filter: /teapot is no path
	// reviews-viewer allows, so Envoy answers 403 before the abort.
	t.Run("teapot: denied before the abort", func(t *testing.T) {
		if code, body := get(t, hc, svc+"/teapot", nil); code != 403 || body != "RBAC: access denied" {
			t.Errorf("got %d %q, want 403 RBAC: access denied", code, body)
		}
	})
	t.Run("admin path denied by deny-admin", func(t *testing.T) {
		if code, _ := get(t, hc, svc+"/admin/x", nil); code != 403 {
			t.Errorf("got %d, want 403", code)
		}
	})
	// istiod routes the gRPC port by the VirtualService, whose
	// destinations name port 9080; but a gRPC call is a POST, which
	// reviews-viewer does not allow: status 7, and no backend sees it.
	t.Run("gRPC port: denied with status 7", func(t *testing.T) {
		gc, ctx := dialGRPC(t, pp.to(fixtureVIP+":9090"))
		const method = "/grpc.health.v1.Health/Check"
		_, err := healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{})
		if n := v1.count(method) + v2.count(method); n != 0 || grpcstatus.Code(err) != codes.PermissionDenied {
			t.Errorf("the 9080 backends saw %s %d times; client error %v (want PermissionDenied)", method, n, err)
		}
	})
	t.Run("gRPC end to end (direct to a pod's gRPC port)", func(t *testing.T) {
		gc, ctx := dialGRPC(t, pp.to(podV1+":9090"))
		r, err := healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v, %v", r, err)
		}
	})
	// istiod's TCP policies deny every connection to 9300 (its rules were
	// HTTP-only): the CONNECT is answered, then the stream closed.
	t.Run("TCP port: closed after the CONNECT", func(t *testing.T) {
		if got := tcpEcho(t, pp.to(fixtureVIP+":9300")); got != "" {
			t.Errorf("got %q, want a closed stream", got)
		}
	})
	t.Run("pod-addressed HTTP through direct-http", func(t *testing.T) {
		code, body := get(t, hc, "http://"+pp.to(podV2+":9080")+"/direct", nil)
		if code != 200 || body != "version=v2 path=/direct" {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("pod-addressed TCP through direct-tcp", func(t *testing.T) {
		if got := tcpEcho(t, pp.to(podV1+":9300")); got != "v1 echo ping\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("config_dump", func(t *testing.T) { checkConfigDump(t, hc, res, "1") })

	// istiod's next push once both AuthorizationPolicies are deleted: no
	// RBAC filter anywhere. The fault filter now answers /teapot, the gRPC
	// port reaches the 9080 backends and the TCP port is relayed.
	open := withoutAuthorizationPolicies(t, withDirectChains(t, xdstest.Reviews(t)))
	v := e.push(open)
	t.Run("policies deleted: the teapot abort (418)", func(t *testing.T) {
		code, body := get(t, hc, svc+"/teapot", nil)
		if n := v1.count("/teapot") + v2.count("/teapot"); code != 418 || body != "fault filter abort" || n != 0 {
			t.Errorf("got %d %q, the pods saw it %d times; want 418 %q from the waypoint", code, body, n, "fault filter abort")
		}
	})
	t.Run("policies deleted: /admin reaches the app", func(t *testing.T) {
		if code, body := get(t, hc, svc+"/admin/x", nil); code != 200 || !strings.HasSuffix(body, "path=/admin/x") {
			t.Errorf("got %d %q", code, body)
		}
	})
	// istiod routes the gRPC port by the VirtualService, whose
	// destinations name port 9080: the 9090 chain's routes go to the 9080
	// clusters, which have no HttpProtocolOptions, so Envoy sends the
	// request to the pods' 9080 over HTTP/1.1 (a POST with a chunked body,
	// te: trailers kept) and returns the app's HTTP answer as it is; a gRPC
	// client sees an HTTP 200 that is not gRPC. We do the same.
	t.Run("policies deleted: gRPC port as istiod routes it, HTTP/1.1 to the 9080 backends", func(t *testing.T) {
		gc, ctx := dialGRPC(t, pp.to(fixtureVIP+":9090"))
		const method = "/grpc.health.v1.Health/Check"
		_, err := healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{Service: "x"})
		if n := v1.count(method) + v2.count(method); n != 1 {
			t.Fatalf("the 9080 backends saw %s %d times, want once", method, n)
		}
		v1.mu.Lock()
		v2.mu.Lock()
		seen := v1.lastGRPC + v2.lastGRPC
		v2.mu.Unlock()
		v1.mu.Unlock()
		if want := "HTTP/1.1 POST " + method + " te=trailers length=-1 chunked=true body=00000000030a0178"; seen != want {
			t.Errorf("the 9080 app saw %q\nwant          %q", seen, want)
		}
		if st := grpcstatus.Convert(err); st.Code() != codes.Unknown || !strings.Contains(st.Message(), `content-type "text/plain`) {
			t.Errorf("client got %v, want Unknown: the 200 answer is not gRPC", err)
		}
	})
	// A local reply of the 9090 chain is a gRPC one: the /teapot fault
	// abort (418) is grpc-status 2 (Unknown), as Envoy maps it.
	t.Run("policies deleted: gRPC port, the teapot abort as a gRPC status", func(t *testing.T) {
		gc, ctx := dialGRPC(t, pp.to(fixtureVIP+":9090"))
		err := gc.Invoke(ctx, "/teapot", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		if st := grpcstatus.Convert(err); st.Code() != codes.Unknown || st.Message() != "fault filter abort" {
			t.Errorf("got %v, want Unknown %q", err, "fault filter abort")
		}
	})
	t.Run("policies deleted: TCP port relayed to a pod", func(t *testing.T) {
		if got := tcpEcho(t, pp.to(fixtureVIP+":9300")); got != "v1 echo ping\n" && got != "v2 echo ping\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("policies deleted: config_dump", func(t *testing.T) { checkConfigDump(t, hc, open, v) })

	// The policies back: enforced again from the next request.
	v = e.push(withDirectChains(t, xdstest.Reviews(t)))
	t.Run("policies back: /teapot denied, TCP closed", func(t *testing.T) {
		if code, body := get(t, hc, svc+"/teapot", nil); code != 403 || body != "RBAC: access denied" {
			t.Errorf("got %d %q, want 403 RBAC: access denied", code, body)
		}
		if got := tcpEcho(t, pp.to(fixtureVIP+":9300")); got != "" {
			t.Errorf("TCP got %q, want a closed stream", got)
		}
		checkConfigDump(t, hc, res, v)
	})
}

// checkConfigDump reads /config_dump as Envoy's admin.v3.ConfigDump (every
// section and resource must parse with the v3 types) and checks that its
// dynamic listeners, clusters and endpoints (with include_eds) are those of res, each at
// version (waiting up to 10 s for the endpoints to follow the listeners).
func checkConfigDump(t *testing.T, hc *http.Client, res *xds.Resources, version string) {
	t.Helper()
	var (
		lds  *adminv3.ListenersConfigDump
		cds  *adminv3.ClustersConfigDump
		eds  *adminv3.EndpointsConfigDump
		rds  *adminv3.RoutesConfigDump
		boot *adminv3.BootstrapConfigDump
	)
	read := func() (versions []string) {
		code, body := get(t, hc, "http://"+adminAddr+"/config_dump?include_eds", nil)
		var dump adminv3.ConfigDump
		if err := protojson.Unmarshal([]byte(body), &dump); err != nil || code != 200 {
			t.Fatalf("config dump: %d %v: %.300s", code, err, body)
		}
		lds, cds, eds, rds, boot = nil, nil, nil, nil, nil
		for i, a := range dump.GetConfigs() {
			m, err := a.UnmarshalNew()
			if err != nil {
				t.Fatalf("configs[%d]: %v", i, err)
			}
			switch m := m.(type) {
			case *adminv3.BootstrapConfigDump:
				boot = m
			case *adminv3.ListenersConfigDump:
				lds = m
			case *adminv3.ClustersConfigDump:
				cds = m
			case *adminv3.EndpointsConfigDump:
				eds = m
			case *adminv3.RoutesConfigDump:
				rds = m
			case *adminv3.SecretsConfigDump:
				if n := len(m.GetDynamicActiveSecrets()); n != 2 {
					t.Fatalf("secrets: %d, want default and ROOTCA", n)
				}
			default:
				t.Fatalf("configs[%d]: unexpected %s", i, a.GetTypeUrl())
			}
		}
		if lds == nil || cds == nil || eds == nil || rds == nil || boot == nil {
			t.Fatalf("config dump sections: listeners %v, clusters %v, endpoints %v, routes %v, bootstrap %v",
				lds != nil, cds != nil, eds != nil, rds != nil, boot != nil)
		}
		if len(rds.GetStaticRouteConfigs()) == 0 {
			t.Fatalf("config dump: no static route configs (the connection managers' inline ones)")
		}
		versions = append(versions, lds.GetVersionInfo(), cds.GetVersionInfo())
		for _, l := range lds.GetDynamicListeners() {
			versions = append(versions, l.GetActiveState().GetVersionInfo())
		}
		for _, c := range cds.GetDynamicActiveClusters() {
			versions = append(versions, c.GetVersionInfo())
		}
		for _, c := range eds.GetDynamicEndpointConfigs() {
			versions = append(versions, c.GetVersionInfo())
		}
		return versions
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		versions := read()
		if allEqual(versions, version) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("config dump versions %v, want all %s", versions, version)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var listeners []proto.Message
	for _, l := range lds.GetDynamicListeners() {
		var pb listenerv3.Listener
		if err := l.GetActiveState().GetListener().UnmarshalTo(&pb); err != nil || pb.GetName() != l.GetName() {
			t.Fatalf("dynamic listener %q: %v (named %q)", l.GetName(), err, pb.GetName())
		}
		listeners = append(listeners, &pb)
	}
	var clusters []proto.Message
	for _, c := range cds.GetDynamicActiveClusters() {
		var pb clusterv3.Cluster
		if err := c.GetCluster().UnmarshalTo(&pb); err != nil {
			t.Fatal(err)
		}
		clusters = append(clusters, &pb)
	}
	var endpoints []proto.Message
	for _, c := range eds.GetDynamicEndpointConfigs() {
		var pb endpointv3.ClusterLoadAssignment
		if err := c.GetEndpointConfig().UnmarshalTo(&pb); err != nil {
			t.Fatal(err)
		}
		endpoints = append(endpoints, &pb)
	}
	for _, d := range []struct {
		what      string
		got, want any
	}{
		{"listeners", byName(listeners), byName(asMessages(res.Listeners))},
		{"clusters", byName(clusters), byName(asMessages(res.Clusters))},
		{"endpoints", byName(endpoints), byName(asMessages(res.Endpoints))},
	} {
		if diff := cmp.Diff(d.want, d.got, protocmp.Transform()); diff != "" {
			t.Errorf("config dump %s differ from what was served (-served +dump):\n%.3000s", d.what, diff)
		}
	}
	if n := len(rds.GetDynamicRouteConfigs()); n != 0 {
		t.Errorf("%d dynamic route configs: the fixture's routes are inline", n)
	}
}

func allEqual(ss []string, v string) bool {
	for _, s := range ss {
		if s != v {
			return false
		}
	}
	return true
}

func asMessages[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// byName keys resources by name (cluster_name for endpoints), so that the
// config dump and the served set compare whatever their order.
func byName(ms []proto.Message) map[string]proto.Message {
	out := make(map[string]proto.Message, len(ms))
	for _, m := range ms {
		out[resourceName(m)] = m
	}
	return out
}

func resourceName(m proto.Message) string {
	switch m := m.(type) {
	case *listenerv3.Listener:
		return m.GetName()
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	}
	return ""
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

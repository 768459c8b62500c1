package waypoint

// This file replays the xDS istiod sends a waypoint (xds/testdata/istiod,
// a copy of ../shared/istiod/reviews) over ADS end to end through HBONE.
// It owns the fixture's pod addresses, 127.10.0.11 and 127.10.0.12 (each
// pod's app on 9080/9090/9300 and its ztunnel on 15008), and the VIP
// 127.10.0.10: no other test package binds them. The waypoint, the xDS
// server and the clients' ztunnels use 127.0.71.0/24.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
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

// pod is one fixture workload: its apps and its ztunnel.
type pod struct {
	version string
	hits    sync.Map // path -> *atomic.Int64

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
type client struct {
	t    *testing.T
	pool *hbone.Pool
	src  *certs.Source
	next int
	base string
}

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
	c.next++
	ln := listen(c.t, fmt.Sprintf("%s:%d", c.base, 20000+c.next))
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

func TestIstiodFixtureOverADS(t *testing.T) {
	dir := t.TempDir()
	ids := []spiffe.ID{
		{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"},
		{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"},
		{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "productpage"},
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	podSrc, err := certs.NewSource(certs.IdentityDir(dir, ids[1]), certs.SourceOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer podSrc.Close()
	v1 := startPod(t, podV1, "v1", podSrc)
	v2 := startPod(t, podV2, "v2", podSrc)

	// The control plane serves the whole fixture (with the pod-addressed
	// chains reachable), its RBAC filters included: productpage is allowed
	// GET /api/* and /reviews/* on the service, nothing else.
	res := withDirectChains(t, xdstest.WithoutIssue6(t, xdstest.Reviews(t), true))
	xdsDir := t.TempDir()
	xdstest.WriteDir(t, xdsDir, res)
	cp, err := xdsserver.New(xdsDir, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	cpDone := make(chan struct{})
	go func() { defer close(cpDone); cp.Serve(listen(t, xdsAddr)) }()
	defer func() { cp.Close(); <-cpDone }()

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := Start(Options{
		CertDir:   certs.IdentityDir(dir, ids[0]),
		HBONEAddr: wpAddr,
		AdminAddr: "127.0.71.5:15000",
		ADS: &ADSOptions{Client: adsclient.Config{Conn: conn,
			Node: &corev3.Node{Id: "waypoint~127.0.71.5~waypoint-a.default~default.svc.cluster.local"}}},
		Logger: quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())

	pp := newClient(t, dir, ids[2], "127.0.71.20")
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
	t.Run("retries on 5xx", func(t *testing.T) {
		code, body := get(t, hc, svc+"/api/flaky", nil)
		tries := v1.count("/v1/flaky") + v2.count("/v1/flaky")
		if code != 200 || tries < 2 {
			t.Errorf("got %d %q after %d tries; want 200 after a retry", code, body, tries)
		}
	})
	t.Run("3s timeout with 1s per try", func(t *testing.T) {
		code, _ := get(t, hc, svc+"/api/slow", nil)
		tries := v1.count("/v1/slow") + v2.count("/v1/slow")
		if code != http.StatusGatewayTimeout || tries < 2 {
			t.Errorf("got %d after %d tries; want 504 after retried per-try timeouts", code, tries)
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
		gc, err := grpc.NewClient(pp.to(fixtureVIP+":9090"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer gc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		const method = "/grpc.health.v1.Health/Check"
		_, err = healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{})
		if n := v1.count(method) + v2.count(method); n != 0 || grpcstatus.Code(err) != codes.PermissionDenied {
			t.Errorf("the 9080 backends saw %s %d times; client error %v (want PermissionDenied)", method, n, err)
		}
	})
	t.Run("gRPC end to end (direct to a pod's gRPC port)", func(t *testing.T) {
		gc, err := grpc.NewClient(pp.to(podV1+":9090"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer gc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v, %v", r, err)
		}
	})
	tcpEcho := func(t *testing.T, addr string) string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "ping\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
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
	t.Run("config_dump", func(t *testing.T) {
		code, body := get(t, hc, "http://127.0.71.5:15000/config_dump", nil)
		var dump struct {
			Configs []struct {
				Type        string `json:"@type"`
				VersionInfo string `json:"version_info"`
				Listeners   []struct {
					Name        string `json:"name"`
					ActiveState struct {
						VersionInfo string `json:"version_info"`
					} `json:"active_state"`
				} `json:"dynamic_listeners"`
				Clusters []struct {
					VersionInfo string `json:"version_info"`
				} `json:"dynamic_active_clusters"`
				Endpoints []struct {
					VersionInfo string `json:"version_info"`
				} `json:"dynamic_endpoint_configs"`
			} `json:"configs"`
		}
		if err := json.Unmarshal([]byte(body), &dump); err != nil || code != 200 {
			t.Fatalf("got %d %v: %.300s", code, err, body)
		}
		got := map[string]string{}
		for _, c := range dump.Configs {
			switch {
			case len(c.Listeners) > 0:
				got["listeners"] = fmt.Sprintf("%d@%s", len(c.Listeners), c.Listeners[0].ActiveState.VersionInfo)
			case len(c.Clusters) > 0:
				got["clusters"] = fmt.Sprintf("%d@%s", len(c.Clusters), c.Clusters[0].VersionInfo)
			case len(c.Endpoints) > 0:
				got["endpoints"] = fmt.Sprintf("%d@%s", len(c.Endpoints), c.Endpoints[0].VersionInfo)
			}
		}
		want := map[string]string{"listeners": fmt.Sprintf("%d@1", len(res.Listeners)),
			"clusters": fmt.Sprintf("%d@1", len(res.Clusters)), "endpoints": fmt.Sprintf("%d@1", len(res.Endpoints))}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("config dump has %v, want %v", got, want)
		}
	})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

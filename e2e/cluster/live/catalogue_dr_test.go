package live

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// DestinationRule cases: load balancing, consistent hashing, connection pools (circuit
// breakers), outlier detection, locality, TLS, subset and port-level policies, as istiod
// renders them on the waypoint's inbound-vip clusters and routes.

// drReply is one answer as the DestinationRule cases look at it.
type drReply struct {
	code       int
	pod        string // x-pod: the workload that answered, "" for a local reply
	overloaded string // x-envoy-overloaded
	setCookie  []string
	remote     string // x-remote: the connection the workload saw (drEcho only)
	body       string
}

// drGet sends GET path on reviews' HTTP port through client c (a source's HTTP client).
func drGet(c *http.Client, b *base, path string, header http.Header) (drReply, error) {
	req, err := http.NewRequest("GET", b.url(path), nil)
	if err != nil {
		return drReply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return drReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return drReply{}, err
	}
	return drReply{code: resp.StatusCode, pod: resp.Header.Get("x-pod"), overloaded: resp.Header.Get("x-envoy-overloaded"),
		setCookie: resp.Header.Values("set-cookie"), remote: resp.Header.Get("x-remote"), body: string(body)}, nil
}

// drCall is drGet as productpage on a new client, failing the test on a transport error.
func drCall(t *testing.T, w *world, b *base, path string, header http.Header) drReply {
	t.Helper()
	r, err := drGet(w.source("productpage").HTTP(), b, path, header)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// drBurst sends n GETs of path at once as productpage (each on its own connection to the
// waypoint) and returns their answers.
func drBurst(t *testing.T, w *world, b *base, n int, path string, header http.Header) []drReply {
	t.Helper()
	c := w.source("productpage").HTTP()
	out := make([]drReply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = drGet(c, b, path, header)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("burst of %d: %v", n, err)
		}
	}
	return out
}

// drOverflow checks that replies holds ok answers 200 and the rest Envoy's overflow answer:
// 503 with x-envoy-overloaded: true and the reset reason overflow, from no workload.
func drOverflow(t *testing.T, replies []drReply, ok int) {
	t.Helper()
	got := 0
	for _, r := range replies {
		switch {
		case r.code == 200 && r.pod != "":
			got++
		case r.code == 503 && r.pod == "":
			if r.overloaded != "true" || !strings.Contains(r.body, "reset reason: overflow") {
				t.Errorf("overflow answer: x-envoy-overloaded %q, body %q", r.overloaded, r.body)
			}
		default:
			t.Errorf("unexpected answer %d from %q: %q", r.code, r.pod, r.body)
		}
	}
	if got != ok {
		t.Errorf("%d of %d answered 200, want %d (the rest overflow)", got, len(replies), ok)
	}
}

// drCount calls path n times, sequentially, and counts the answers by workload; any answer
// but 200 fails the test.
func drCount(t *testing.T, w *world, b *base, n int, path string, header http.Header) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		r := drCall(t, w, b, path, header)
		if r.code != 200 {
			t.Fatalf("GET %s: %d %q", path, r.code, r.body)
		}
		got[r.pod]++
	}
	return got
}

// drEcho serves HTTP/1.1 on p's ip:port as the world's echo does (x-pod, x-echo-delay,
// hits), and also says in x-remote the address of the connection the request came on, so
// that a case sees how the waypoint's upstream connections are used.
func drEcho(w *world, p *pod, port int) {
	w.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.Header.Get("x-echo-delay")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		rw.Header().Set("content-type", "application/json")
		rw.Header().Set("x-pod", p.name)
		rw.Header().Set("x-remote", r.RemoteAddr)
		json.NewEncoder(rw).Encode(echoReply{Pod: p.name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: r.Header})
	})}
	go srv.Serve(ln)
	w.t.Cleanup(func() { srv.Close() })
}

// drPPEcho is drEcho behind a PROXY protocol v1 reader: each connection's header line (its
// first) is taken off and said in x-proxy, without its CRLF.
func drPPEcho(w *world, p *pod, port int) {
	w.t.Helper()
	inner, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	type key struct{}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		line, _ := r.Context().Value(key{}).(string)
		rw.Header().Set("x-pod", p.name)
		rw.Header().Set("x-proxy", strings.TrimRight(line, "\r\n"))
		json.NewEncoder(rw).Encode(echoReply{Pod: p.name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: r.Header})
	}), ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, key{}, c.(*drPPConn).line)
	}}
	go srv.Serve(drPPListener{inner})
	w.t.Cleanup(func() { srv.Close() })
}

// drPPListener reads the first line of each connection it accepts.
type drPPListener struct{ net.Listener }

func (l drPPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := r.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return &drPPConn{Conn: c, r: r, line: line}, nil
}

// drPPConn is a connection whose first line was read off.
type drPPConn struct {
	net.Conn
	r    *bufio.Reader
	line string
}

func (c *drPPConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// drGRPCEcho serves gRPC (h2c) on p's ip:port as the world's gRPC echo does, waiting for the
// metadata x-echo-delay first, and says in the header x-remote the address of the connection
// the call came on.
func drGRPCEcho(w *world, p *pod, port int) {
	w.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		p.hits.Add(1)
		remote := ""
		if pr, ok := peer.FromContext(ss.Context()); ok {
			remote = pr.Addr.String()
		}
		ss.SetHeader(metadata.Pairs("x-pod", p.name, "x-remote", remote))
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		if md, ok := metadata.FromIncomingContext(ss.Context()); ok && len(md.Get("x-echo-delay")) > 0 {
			if d, err := time.ParseDuration(md.Get("x-echo-delay")[0]); err == nil {
				time.Sleep(d)
			}
		}
		return ss.SendMsg(&msg)
	}))
	go srv.Serve(ln)
	w.t.Cleanup(srv.Stop)
}

// drGRPCCall calls /echo.Echo/Say on authority as productpage with metadata md and returns
// the x-remote the echo answered.
func drGRPCCall(w *world, authority string, md ...string) (string, error) {
	src := w.source("productpage")
	conn, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return src.Dial(ctx, addr) }),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), md...), 10*time.Second)
	defer cancel()
	var header metadata.MD
	in, out := []byte("ping"), []byte(nil)
	if err := conn.Invoke(ctx, "/echo.Echo/Say", &in, &out, grpc.Header(&header)); err != nil {
		return "", err
	}
	if v := header.Get("x-remote"); len(v) > 0 {
		return v[0], nil
	}
	return "", fmt.Errorf("no x-remote header")
}

// drV3 is a DestinationRule with trafficPolicy policy (YAML indented for it) and a subset
// v3 (version=v3), and a VirtualService routing reviews' HTTP port to that subset alone, so
// that a case has one host whose connections it sees (drAddV3 adds it).
// mtlsCAs holds each world's CA of dr-tls-mutual-egress, from its setup to its check.
var mtlsCAs sync.Map // *world → *testCA

func drV3(policy string) string {
	return drV3Rule(policy) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
`
}

// drV3Rule is drV3's DestinationRule.
func drV3Rule(policy string) string {
	return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
` + policy + `
  subsets:
  - name: v3
    labels: {version: v3}
`
}

// drAddV3 adds workload reviews-v3 (app=reviews, version=v3) with a drEcho on 9080 and waits
// until a request reaches it.
func drAddV3(t *testing.T, w *world, b *base) *pod {
	t.Helper()
	return drAddV3With(t, w, b, drEcho)
}

// drAddV3With is drAddV3 with echo serving 9080.
func drAddV3With(t *testing.T, w *world, b *base, echo func(*world, *pod, int)) *pod {
	t.Helper()
	p := w.workload("reviews-v3", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v3"})
	echo(w, p, 9080)
	w.eventually(30*time.Second, "a request reaches reviews-v3", func() error {
		r, err := drGet(w.source("productpage").HTTP(), b, "/", nil)
		if err != nil || r.pod != "reviews-v3" {
			return fmt.Errorf("%d from %q: %v", r.code, r.pod, err)
		}
		return nil
	})
	w.synced()
	return p
}

// drDistinct counts the distinct values of f over replies.
func drDistinct(replies []drReply, f func(drReply) string) int {
	seen := map[string]bool{}
	for _, r := range replies {
		seen[f(r)] = true
	}
	return len(seen)
}

var drSetCookie = regexp.MustCompile(`^session="([0-9a-f]{16})"; Max-Age=60; Path=/; HttpOnly$`)

// drSticky checks that each of users (a header or cookie value set by with) always lands on
// the same workload, over tries calls each, and that the users spread over both workloads.
func drSticky(t *testing.T, w *world, b *base, users, tries int, with func(user string) http.Header) {
	t.Helper()
	owners := map[string]int{}
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		var first string
		for i := range tries {
			r := drCall(t, w, b, "/", with(user))
			if r.code != 200 {
				t.Fatalf("%s: %d %q", user, r.code, r.body)
			}
			if i == 0 {
				first = r.pod
				owners[first]++
			} else if r.pod != first {
				t.Errorf("%s: try %d answered by %s, the first by %s", user, i, r.pod, first)
			}
		}
	}
	if owners["reviews-v1"] == 0 || owners["reviews-v2"] == 0 {
		t.Errorf("%d users all on one workload: %v", users, owners)
	}
}

func init() {
	catalogue = append(catalogue,
		compatCase{
			name:      "dr-lb-round-robin",
			resources: "DestinationRule loadBalancer simple ROUND_ROBIN",
			checks:    "20 requests one after the other alternate strictly between the two workloads",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
`,
			check: func(t *testing.T, w *world, b *base) {
				var prev string
				got := map[string]int{}
				for i := range 20 {
					r := drCall(t, w, b, "/", nil)
					if r.code != 200 {
						t.Fatalf("%d %q", r.code, r.body)
					}
					if i > 0 && r.pod == prev {
						t.Errorf("request %d: %s again", i, r.pod)
					}
					prev = r.pod
					got[r.pod]++
				}
				if got["reviews-v1"] != 10 || got["reviews-v2"] != 10 {
					t.Errorf("20 requests: %v, want 10 each", got)
				}
			},
		},
		compatCase{
			name:      "dr-lb-least-request",
			resources: "DestinationRule loadBalancer simple LEAST_REQUEST",
			checks:    "40 requests: both workloads answer some",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
`,
			check: func(t *testing.T, w *world, b *base) {
				got := drCount(t, w, b, 40, "/", nil)
				if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 {
					t.Errorf("40 requests: %v", got)
				}
			},
		},
		compatCase{
			name:      "dr-lb-random",
			resources: "DestinationRule loadBalancer simple RANDOM",
			checks:    "40 requests: both workloads answer some",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
`,
			check: func(t *testing.T, w *world, b *base) {
				got := drCount(t, w, b, 40, "/", nil)
				if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 {
					t.Errorf("40 requests: %v", got)
				}
			},
		},
		compatCase{
			name:      "dr-consistent-hash-header",
			resources: "DestinationRule consistentHash httpHeaderName `x-user`, ringHash minimumRingSize 1024",
			checks:    "each of 20 users (header values) lands on the same workload 3 times out of 3; the users spread over both",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        ringHash: {minimumRingSize: 1024}
`,
			check: func(t *testing.T, w *world, b *base) {
				drSticky(t, w, b, 20, 3, func(u string) http.Header { return http.Header{"X-User": {u}} })
			},
		},
		compatCase{
			name:      "dr-consistent-hash-cookie",
			resources: "DestinationRule consistentHash httpCookie `session` (ttl 60s, path /), maglev tableSize 1021",
			checks:    "a request without the cookie gets `Set-Cookie: session=\"<16 hex>\"; Max-Age=60; Path=/; HttpOnly`, and with that cookie lands on the workload that answered it, 5 times; 20 cookie values stick and spread over both",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, ttl: 60s, path: /}
        maglev: {tableSize: 1021}
`,
			check: func(t *testing.T, w *world, b *base) {
				r := drCall(t, w, b, "/", nil)
				if r.code != 200 || len(r.setCookie) != 1 {
					t.Fatalf("without the cookie: %d, set-cookie %q", r.code, r.setCookie)
				}
				m := drSetCookie.FindStringSubmatch(r.setCookie[0])
				if m == nil {
					t.Fatalf("set-cookie %q, want session=\"<16 hex>\"; Max-Age=60; Path=/; HttpOnly", r.setCookie[0])
				}
				for i := range 5 {
					again := drCall(t, w, b, "/", http.Header{"Cookie": {"session=" + m[1]}})
					if again.code != 200 || again.pod != r.pod || len(again.setCookie) != 0 {
						t.Errorf("with the cookie, try %d: %d from %s (set-cookie %q), want 200 from %s and no new cookie",
							i, again.code, again.pod, again.setCookie, r.pod)
					}
				}
				drSticky(t, w, b, 20, 3, func(u string) http.Header { return http.Header{"Cookie": {"other=1; session=" + u}} })
			},
		},
		compatCase{
			name:      "dr-consistent-hash-source-ip",
			resources: "DestinationRule consistentHash useSourceIp",
			checks:    "20 requests from one source, each on a new connection, land on one workload; so do 10 TCP connections to port 9300 (istiod writes the tcp_proxy's hash_policy source_ip)",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {useSourceIp: true}
`,
			check: func(t *testing.T, w *world, b *base) {
				if got := drCount(t, w, b, 20, "/", nil); len(got) != 1 {
					t.Errorf("20 requests from one source: %v, want one workload", got)
				}
				got := map[string]int{}
				for range 10 {
					pod, err := w.tcpCall("productpage", b.vip+":9300")
					if err != nil {
						t.Fatalf("TCP: %v", err)
					}
					got[pod]++
				}
				if len(got) != 1 {
					t.Errorf("10 TCP connections from one source: %v, want one workload", got)
				}
			},
		},
		compatCase{
			name:      "dr-connection-pool-pending",
			resources: "DestinationRule connectionPool tcp.maxConnections 1, http.http1MaxPendingRequests 1 (one workload, subset v3)",
			checks:    "of 4 slow requests (1 s) at once, 2 answer 200 over one upstream connection, the second after the first (at least 2 s), and 2 get 503 `x-envoy-overloaded: true` (reset reason overflow) without reaching the workload",
			yaml: drV3(`    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}`),
			check: func(t *testing.T, w *world, b *base) {
				v3 := drAddV3(t, w, b)
				warm := drCall(t, w, b, "/", nil)
				if warm.code != 200 || warm.pod != "reviews-v3" {
					t.Fatalf("first request: %d from %q", warm.code, warm.pod)
				}
				hits := v3.hits.Load()
				start := time.Now()
				replies := drBurst(t, w, b, 4, "/", http.Header{"X-Echo-Delay": {"1s"}})
				drOverflow(t, replies, 2)
				if d := time.Since(start); d < 2*time.Second {
					t.Errorf("the burst ended after %v: the pending request did not wait for the connection", d)
				}
				if n := v3.hits.Load() - hits; n != 2 {
					t.Errorf("the workload received %d requests, want 2", n)
				}
				var remotes []drReply
				for _, r := range append(replies, warm) {
					if r.code == 200 {
						remotes = append(remotes, r)
					}
				}
				if n := drDistinct(remotes, func(r drReply) string { return r.remote }); n != 1 {
					t.Errorf("requests came over %d upstream connections, want 1: %v", n, remotes)
				}
			},
		},
		compatCase{
			name:      "dr-connection-pool-max-requests",
			resources: "DestinationRule connectionPool http.http2MaxRequests 2",
			checks:    "of 5 slow requests (1 s) at once, exactly 2 answer 200 and 3 get 503 `x-envoy-overloaded: true`; the workloads receive 2",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 2}
`,
			check: func(t *testing.T, w *world, b *base) {
				hits := b.v1.hits.Load() + b.v2.hits.Load()
				drOverflow(t, drBurst(t, w, b, 5, "/", http.Header{"X-Echo-Delay": {"1s"}}), 2)
				if n := b.v1.hits.Load() + b.v2.hits.Load() - hits; n != 2 {
					t.Errorf("the workloads received %d requests, want 2", n)
				}
				// Once they are done, the next ones pass.
				drOverflow(t, drBurst(t, w, b, 2, "/", nil), 2)
			},
		},
		compatCase{
			name:      "dr-connection-pool-per-connection",
			resources: "DestinationRule connectionPool http.maxRequestsPerConnection 1 (one workload, subset v3), then without it",
			checks:    "5 requests one after the other come to the workload over 5 connections; without the limit, over one",
			yaml: drV3(`    connectionPool:
      http: {maxRequestsPerConnection: 1}`),
			check: func(t *testing.T, w *world, b *base) {
				drAddV3(t, w, b)
				var replies []drReply
				for range 5 {
					replies = append(replies, drCall(t, w, b, "/", nil))
				}
				if n := drDistinct(replies, func(r drReply) string { return r.remote }); n != 5 {
					t.Errorf("5 requests over %d connections, want 5", n)
				}
				w.applied(drV3Rule(`    loadBalancer: {simple: ROUND_ROBIN}`))
				replies = nil
				for range 5 {
					replies = append(replies, drCall(t, w, b, "/", nil))
				}
				if n := drDistinct(replies, func(r drReply) string { return r.remote }); n != 1 {
					t.Errorf("without maxRequestsPerConnection, 5 requests over %d connections, want 1", n)
				}
			},
		},
		compatCase{
			name:      "dr-outlier-detection",
			resources: "DestinationRule outlierDetection consecutive5xxErrors 1, interval 1s, baseEjectionTime 30s, maxEjectionPercent 100",
			checks:    "once reviews-v2 has answered one 503 (`/fail-on-reviews-v2`), it is ejected: it receives nothing more and 20 requests all land on v1",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
`,
			check: func(t *testing.T, w *world, b *base) {
				// istiod's default retry policy retries no status code: the
				// first request reviews-v2 gets is answered 503 by it.
				for i := 0; ; i++ {
					if i == 10 {
						t.Fatalf("10 requests and none reached reviews-v2")
					}
					r := drCall(t, w, b, "/fail-on-reviews-v2", nil)
					if r.code == 503 && r.pod == "reviews-v2" {
						break
					}
					if r.code != 200 || r.pod != "reviews-v1" {
						t.Fatalf("/fail-on-reviews-v2: %d from %q, want 200 from reviews-v1 or 503 from reviews-v2", r.code, r.pod)
					}
				}
				v2 := b.v2.hits.Load()
				if got := drCount(t, w, b, 20, "/", nil); got["reviews-v1"] != 20 {
					t.Errorf("after the ejection: %v, want all 20 on reviews-v1", got)
				}
				if n := b.v2.hits.Load() - v2; n != 0 {
					t.Errorf("the ejected reviews-v2 received %d requests", n)
				}
			},
		},
		compatCase{
			name:      "dr-subset-traffic-policy",
			resources: "DestinationRule http2MaxRequests 3, subset v1 overriding it with 1; VirtualService: header `x-subset: v1` to v1, the rest to v2",
			checks:    "of 3 slow requests at once to v1, 1 answers and 2 overflow (503 `x-envoy-overloaded`); of 4 to v2, 3 answer and 1 overflows (the top-level limit)",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 3}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        http: {http2MaxRequests: 1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        x-subset: {exact: v1}
    route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v2}
`,
			check: func(t *testing.T, w *world, b *base) {
				drOverflow(t, drBurst(t, w, b, 3, "/", http.Header{"X-Echo-Delay": {"1s"}, "X-Subset": {"v1"}}), 1)
				drOverflow(t, drBurst(t, w, b, 4, "/", http.Header{"X-Echo-Delay": {"1s"}}), 3)
			},
		},
		compatCase{
			name:      "dr-port-level-settings",
			resources: "DestinationRule consistentHash httpHeaderName `x-user`, portLevelSettings: port 9080 ROUND_ROBIN",
			checks:    "on 9080 one user's requests alternate between the workloads (the port's policy); on 9090 (gRPC) each user's calls stick to one workload (the top-level hash)",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: ROUND_ROBIN}
`,
			check: func(t *testing.T, w *world, b *base) {
				if got := drCount(t, w, b, 10, "/", http.Header{"X-User": {"jason"}}); got["reviews-v1"] != 5 || got["reviews-v2"] != 5 {
					t.Errorf("9080, one user: %v, want 5 on each", got)
				}
				owners := map[string]int{}
				for u := range 10 {
					var first string
					for i := range 3 {
						pod, err := w.grpcCall("productpage", b.vip+":9090", "/echo.Echo/Say", "x-user", fmt.Sprintf("user-%d", u))
						if err != nil {
							t.Fatalf("gRPC: %v", err)
						}
						if i == 0 {
							first = pod
							owners[pod]++
						} else if pod != first {
							t.Errorf("9090, user-%d: call %d on %s, the first on %s", u, i, pod, first)
						}
					}
				}
				if len(owners) != 2 {
					t.Errorf("9090: 10 users on %v, want both workloads", owners)
				}
			},
		},
		compatCase{
			name:      "dr-tls-istio-mutual",
			resources: "DestinationRule trafficPolicy.tls mode ISTIO_MUTUAL on the in-mesh service",
			checks:    "istiod keeps HBONE for the waypoint's clusters: HTTP, gRPC and TCP reach both workloads",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
`,
			check: func(t *testing.T, w *world, b *base) {
				if got := drCount(t, w, b, 10, "/", nil); len(got) != 2 {
					t.Errorf("HTTP: %v, want both workloads", got)
				}
				for range 4 {
					if _, err := w.grpcCall("productpage", b.vip+":9090", "/echo.Echo/Say"); err != nil {
						t.Errorf("gRPC: %v", err)
					}
					if _, err := w.tcpCall("productpage", b.vip+":9300"); err != nil {
						t.Errorf("TCP: %v", err)
					}
				}
			},
		},
		compatCase{
			name: "dr-locality",
			resources: "waypoint pod label istio-locality region1.zone1.sub1; WorkloadEntries reviews-v1 in region1/zone1/sub1 and reviews-v2 in region2/zone2/sub2; " +
				"DestinationRule localityLbSetting failover region1 to region2, outlierDetection consecutive5xxErrors 1, maxEjectionPercent 100",
			checks: "the waypoint sends node.locality region1/zone1/sub1 and istiod gives reviews-v1 priority 0 and reviews-v2 priority 1: 10 requests all land on reviews-v1; " +
				"once reviews-v1 has answered one 503 (`/fail-on-reviews-v1`) it is ejected, its priority loses its load and 10 requests all fail over to reviews-v2",
			waypointLabels: map[string]string{"istio-locality": "region1.zone1.sub1"},
			yaml: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: "{{NS}}"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.11"
  serviceAccount: bookinfo-reviews
  labels: {security.istio.io/tlsMode: disabled, app: reviews, version: v1}
  locality: region1/zone1/sub1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
  namespace: "{{NS}}"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.12"
  serviceAccount: bookinfo-reviews
  labels: {security.istio.io/tlsMode: disabled, app: reviews, version: v2}
  locality: region2/zone2/sub2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover:
        - {from: region1, to: region2}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
`,
			check: func(t *testing.T, w *world, b *base) {
				// The WorkloadEntries' localities reach istiod's EDS after the
				// DestinationRule's push: wait until the local endpoint has all of it.
				w.eventually(20*time.Second, "all requests on reviews-v1, the waypoint's locality", func() error {
					if got := drCount(t, w, b, 10, "/", nil); got["reviews-v1"] != 10 {
						return fmt.Errorf("%v", got)
					}
					return nil
				})
				v2 := b.v2.hits.Load()
				if got := drCount(t, w, b, 10, "/", nil); got["reviews-v1"] != 10 {
					t.Errorf("before the ejection: %v, want all 10 on reviews-v1", got)
				}
				if n := b.v2.hits.Load() - v2; n != 0 {
					t.Errorf("reviews-v2, of the other region, received %d requests while reviews-v1 was healthy", n)
				}
				// istiod's default retry policy retries no status code: the
				// 503 comes back and ejects reviews-v1.
				if r := drCall(t, w, b, "/fail-on-reviews-v1", nil); r.code != 503 || r.pod != "reviews-v1" {
					t.Fatalf("/fail-on-reviews-v1: %d from %q, want 503 from reviews-v1", r.code, r.pod)
				}
				v1 := b.v1.hits.Load()
				if got := drCount(t, w, b, 10, "/", nil); got["reviews-v2"] != 10 {
					t.Errorf("after the ejection: %v, want all 10 failed over to reviews-v2", got)
				}
				if n := b.v1.hits.Load() - v1; n != 0 {
					t.Errorf("the ejected reviews-v1 received %d requests", n)
				}
			},
		},
		compatCase{
			name: "dr-locality-distribute",
			resources: "waypoint pod label istio-locality region1.zone1.sub1; WorkloadEntries reviews-v1 in region1/zone1/sub1 and reviews-v2 in region2/zone2/sub2; " +
				"DestinationRule localityLbSetting distribute from region1/zone1/* to region1/zone1/* 80, region2/zone2/* 20",
			checks: "istiod weights the localities 80 and 20 (locality_weighted_lb_config): 50 requests land 40 on reviews-v1 and 10 on reviews-v2, " +
				"the localities picked by Envoy's weighted round robin",
			waypointLabels: map[string]string{"istio-locality": "region1.zone1.sub1"},
			yaml: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: "{{NS}}"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.11"
  serviceAccount: bookinfo-reviews
  labels: {security.istio.io/tlsMode: disabled, app: reviews, version: v1}
  locality: region1/zone1/sub1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
  namespace: "{{NS}}"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.12"
  serviceAccount: bookinfo-reviews
  labels: {security.istio.io/tlsMode: disabled, app: reviews, version: v2}
  locality: region2/zone2/sub2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/zone1/*
          to: {"region1/zone1/*": 80, "region2/zone2/*": 20}
`,
			check: func(t *testing.T, w *world, b *base) {
				// A schedule of 4 to 1: any 50 requests in a row are 40 and 10.
				w.eventually(20*time.Second, "50 requests shared 40/10", func() error {
					if got := drCount(t, w, b, 50, "/", nil); got["reviews-v1"] != 40 || got["reviews-v2"] != 10 {
						return fmt.Errorf("%v", got)
					}
					return nil
				})
			},
		},
		compatCase{
			name: "dr-tls-simple-egress",
			resources: "ServiceEntry `static.example.com` (port 80 to targetPort 443, STATIC endpoint, `istio.io/use-waypoint`); DestinationRule tls mode SIMPLE, " +
				"sni, caCertificates (a file: istiod's SDS `file-root:PATH`, read by the waypoint), subjectAltNames",
			checks: "the waypoint originates TLS to the endpoint's address (no HBONE) with the SNI, verifying the server's certificate with the CA and SAN: " +
				"requests reach the TLS server; with a subjectAltNames the certificate does not have, the handshake is refused and requests are answered 503 (pooled connections of the old TLS are not reused)",
			setup: func(t *testing.T, w *world) {
				w.tlsEcho(&pod{name: "static-api", ip: w.net + ".40"}, 443, "static.example.com")
			},
			yaml: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: static-api
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [static.example.com]
  addresses: [240.0.0.10]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 443}
  resolution: STATIC
  endpoints:
  - address: "{{NET}}.40"
---
` + egressDR("static.example.com"),
			check: func(t *testing.T, w *world, b *base) {
				var r echoReply
				w.eventually(20*time.Second, "a request over the originated TLS", func() error {
					code, got, err := w.call("productpage", "GET", "http://240.0.0.10/x", nil)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					r = got
					return nil
				})
				if r.Pod != "static-api" || r.Path != "/x" || r.Headers.Get("X-Echo-Sni") != "static.example.com" {
					t.Errorf("the TLS server saw %q %q with SNI %q, want static-api /x static.example.com", r.Pod, r.Path, r.Headers.Get("X-Echo-Sni"))
				}
				w.applied(egressDR("other.example.com"))
				w.eventually(20*time.Second, "a certificate without the SAN refused", func() error {
					if code, _, err := w.call("productpage", "GET", "http://240.0.0.10/y", nil); err != nil || code != 503 {
						return fmt.Errorf("%d %v, want 503", code, err)
					}
					return nil
				})
			},
		},
		compatCase{
			name: "dr-tls-mutual-egress",
			resources: "ServiceEntry `mtls.example.com` (port 80 to targetPort 443, STATIC endpoint, `istio.io/use-waypoint`); DestinationRule tls mode MUTUAL, " +
				"credentialName client-credential: a kubernetes.io/tls Secret (a client certificate of a test CA, ca.crt the CA of the server); " +
				"a Role letting the waypoint's service account list Secrets in its namespace (istiod serves a kubernetes:// credential to a proxy that may read it)",
			checks: "istiod serves the credential over ADS (SDS `kubernetes://client-credential` and `-cacert`) and the cluster waits for it; requests to " +
				"mtls.example.com reach a TLS server that requires a client certificate of the CA, with the SNI from the request's host (auto_sni) and " +
				"its certificate checked for that host (auto_san_validation); when the Secret changes to a client certificate of another CA, " +
				"the server refuses the handshake and requests are answered 503",
			setup: func(t *testing.T, w *world) {
				ca := newTestCA(t, "mtls CA")
				w.mtlsEcho(&pod{name: "mtls-api", ip: w.net + ".41"}, 443, ca, "mtls.example.com")
				cert, key := ca.issue(t, "client")
				w.apply(credentialYAML("client-credential", cert, key, ca.pem))
				mtlsCAs.Store(w, ca)
			},
			yaml: `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: waypoint-credentials, namespace: "{{NS}}"}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: waypoint-credentials, namespace: "{{NS}}"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: waypoint-credentials}
subjects:
- {kind: ServiceAccount, name: waypoint, namespace: "{{NS}}"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: mtls-api
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [mtls.example.com]
  addresses: [240.0.0.11]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 443}
  resolution: STATIC
  endpoints:
  - address: "{{NET}}.41"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mtls-api, namespace: "{{NS}}"}
spec:
  host: mtls.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: client-credential}
`,
			check: func(t *testing.T, w *world, b *base) {
				host := http.Header{"Host": {"mtls.example.com"}}
				var r echoReply
				w.eventually(30*time.Second, "a request over mutual TLS with the credential", func() error {
					code, got, err := w.call("productpage", "GET", "http://240.0.0.11/x", host)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					r = got
					return nil
				})
				if r.Pod != "mtls-api" || r.Path != "/x" || r.Headers.Get("X-Echo-Sni") != "mtls.example.com" {
					t.Errorf("the TLS server saw %q %q with SNI %q, want mtls-api /x mtls.example.com", r.Pod, r.Path, r.Headers.Get("X-Echo-Sni"))
				}
				// A client certificate of another CA: istiod pushes the new secret, and the
				// server refuses it.
				other := newTestCA(t, "other CA")
				cert, key := other.issue(t, "client")
				v, _ := mtlsCAs.Load(w)
				w.apply(credentialYAML("client-credential", cert, key, v.(*testCA).pem))
				w.eventually(30*time.Second, "a client certificate of another CA refused", func() error {
					if code, _, err := w.call("productpage", "GET", "http://240.0.0.11/y", host); err != nil || code != 503 {
						return fmt.Errorf("%d %v, want 503", code, err)
					}
					return nil
				})
			},
		},
		compatCase{
			name:      "dr-connection-pool-tcp",
			resources: "DestinationRule connectionPool tcp: tcpKeepalive, connectTimeout 2s, maxConnectionDuration 2s (one workload, subset v3, for HTTP; both on TCP 9300)",
			checks:    "requests one after the other share an upstream connection until it is 2 s old, then a new one is opened; a TCP connection through the waypoint is closed by it, after at least 2 s",
			yaml: drV3(`    connectionPool:
      tcp:
        tcpKeepalive: {time: 600s, interval: 30s, probes: 3}
        connectTimeout: 2s
        maxConnectionDuration: 2s`),
			check: func(t *testing.T, w *world, b *base) {
				w.tcpEcho(drAddV3(t, w, b), 9300) // the TCP port's traffic may go to any workload
				first := drCall(t, w, b, "/", nil)
				again := drCall(t, w, b, "/", nil)
				if first.remote == "" || again.remote != first.remote {
					t.Errorf("two requests at once over %q and %q, want one connection", first.remote, again.remote)
				}
				time.Sleep(2500 * time.Millisecond)
				if late := drCall(t, w, b, "/", nil); late.code != 200 || late.remote == first.remote {
					t.Errorf("a request after the connection's 2 s: %d over %q, want 200 over a new connection", late.code, late.remote)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				c, err := w.source("productpage").Dial(ctx, b.vip+":9300")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				go func() { <-ctx.Done(); c.Close() }()
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				if d := time.Since(start); d < 2*time.Second || ctx.Err() != nil {
					t.Errorf("the TCP connection ended after %v (test deadline passed: %v), want the waypoint to close it at 2 s", d, ctx.Err() != nil)
				}
			},
		},
		compatCase{
			name:      "dr-warmup",
			resources: "DestinationRule loadBalancer ROUND_ROBIN with warmup (duration 20s, minimumPercent 10, aggression 0.25); once reviews-v1 and v2 are past it, workload reviews-v3 joins",
			checks:    "of 60 requests in reviews-v3's first seconds (its weight at the 10% minimum until about 11 s), it gets some and less than half of what each older workload gets",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 20s, minimumPercent: 10, aggression: 0.25}
`,
			check: func(t *testing.T, w *world, b *base) {
				// The hosts the cluster had from the start of the world, and
				// so from before this check, are past their 20 s after this.
				time.Sleep(20 * time.Second)
				p := w.workload("reviews-v3", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v3"})
				drEcho(w, p, 9080)
				w.eventually(30*time.Second, "reviews-v3 answers", func() error {
					if r, err := drGet(w.source("productpage").HTTP(), b, "/", nil); err != nil || r.pod != "reviews-v3" {
						return fmt.Errorf("%q %v", r.pod, err)
					}
					return nil
				})
				got := drCount(t, w, b, 60, "/", nil)
				if v3 := got["reviews-v3"]; v3 == 0 || 2*v3 >= got["reviews-v1"] || 2*v3 >= got["reviews-v2"] {
					t.Errorf("60 requests: %v, want reviews-v3 warming up (some, less than half of each other)", got)
				}
			},
		},
		compatCase{
			name:      "dr-retry-budget",
			resources: "VirtualService retries attempts 3 on 5xx; DestinationRule retryBudget percent 20, minRetryConcurrency 1; then connectionPool.http.maxRetries 1 instead",
			checks:    "3 requests at once that the workloads answer 503 after 1 s: one is retried 3 times, the two others not (the budget), so the workloads see 6 requests and the client three 503 from them; the same with maxRetries 1",
			yaml: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    retryBudget: {percent: 20, minRetryConcurrency: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retries: {attempts: 3, retryOn: 5xx}
`,
			check: func(t *testing.T, w *world, b *base) {
				burst := func(what string) {
					hits := b.v1.hits.Load() + b.v2.hits.Load()
					for _, r := range drBurst(t, w, b, 3, "/", http.Header{"X-Echo-Delay": {"1s"}, "X-Echo-Status": {"503"}}) {
						if r.code != 503 || r.pod == "" {
							t.Errorf("%s: %d from %q, want the workload's 503", what, r.code, r.pod)
						}
					}
					if n := b.v1.hits.Load() + b.v2.hits.Load() - hits; n != 6 {
						t.Errorf("%s: the workloads saw %d requests, want 6 (3, and 3 retries of one)", what, n)
					}
				}
				burst("retry budget")
				w.applied(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {maxRetries: 1}
`)
				burst("maxRetries 1")
			},
		},
		compatCase{
			name:      "dr-connection-pool-h2",
			resources: "DestinationRule connectionPool.http.maxConcurrentStreams 1 (one workload, subset v3, gRPC on 9090, HTTP/2 upstream)",
			checks:    "3 slow gRPC calls at once reach the workload over 3 upstream connections; with maxConcurrentStreams 100, over one",
			yaml: drV3(`    connectionPool:
      http: {maxConcurrentStreams: 1}`),
			check: func(t *testing.T, w *world, b *base) {
				p := drAddV3(t, w, b)
				drGRPCEcho(w, p, 9090)
				calls := func() int {
					remotes := make([]drReply, 3)
					var wg sync.WaitGroup
					for i := range remotes {
						wg.Add(1)
						go func() {
							defer wg.Done()
							r, err := drGRPCCall(w, b.vip+":9090", "x-echo-delay", "1s")
							if err != nil {
								t.Errorf("gRPC: %v", err)
							}
							remotes[i].remote = r
						}()
					}
					wg.Wait()
					return drDistinct(remotes, func(r drReply) string { return r.remote })
				}
				if n := calls(); n != 3 {
					t.Errorf("3 calls at once over %d connections, want 3", n)
				}
				w.applied(drV3Rule(`    connectionPool:
      http: {maxConcurrentStreams: 100}`))
				if n := calls(); n != 1 {
					t.Errorf("with maxConcurrentStreams 100, 3 calls at once over %d connections, want 1", n)
				}
			},
		},
		compatCase{
			name:      "dr-proxy-protocol",
			resources: "DestinationRule trafficPolicy.proxyProtocol version V1 (one workload, subset v3, behind a PROXY protocol reader)",
			checks:    "each connection to the workload starts with `PROXY TCP4 <source> <VIP> <port> 9080`: the downstream's source and original destination, through the HBONE tunnel",
			yaml:      drV3(`    proxyProtocol: {version: V1}`),
			check: func(t *testing.T, w *world, b *base) {
				drAddV3With(t, w, b, drPPEcho)
				want := regexp.MustCompile(`^PROXY TCP4 [0-9.]+ ` + regexp.QuoteMeta(b.vip) + ` [0-9]+ 9080$`)
				for range 3 {
					req, _ := http.NewRequest("GET", b.url("/"), nil)
					resp, err := w.source("productpage").HTTP().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if got := resp.Header.Get("x-proxy"); resp.StatusCode != 200 || !want.MatchString(got) {
						t.Errorf("%d, the connection began with %q, want %s", resp.StatusCode, got, want)
					}
				}
			},
		},
	)
}

// egressDR is the DestinationRule of dr-tls-simple-egress: TLS SIMPLE to static.example.com,
// the server's certificate verified with the test's CA and the SAN san.
func egressDR(san string) string {
	return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: static-api, namespace: "{{NS}}"}
spec:
  host: static.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: static.example.com
      caCertificates: "{{DIR}}/static-api-ca.pem"
      subjectAltNames: [` + san + `]
`
}

package live

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	logcollpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Security and telemetry cases: AuthorizationPolicy, RequestAuthentication, PeerAuthentication
// and Telemetry, as a live istiod renders them for a waypoint.

// secCall sends method path to url as source sa and returns the status, the body and the pod
// that answered ("" for a local reply).
func secCall(t *testing.T, w *world, sa, method, url string, header http.Header) (int, string, string) {
	t.Helper()
	return secCallWith(t, w.source(sa), method, url, header)
}

func secCallWith(t *testing.T, src *source, method, url string, header http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := src.HTTP().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("x-pod")
}

// secExpect is one request and what it must get: 200 from a workload, or 403 `RBAC: access
// denied` from the waypoint (which then reaches no workload).
type secExpect struct {
	sa, method, path string
	header           http.Header
	want             int
}

// secCheck runs the table against url(path), counting the workloads' hits for the denials.
func secCheck(t *testing.T, w *world, url func(string) string, pods []*pod, table []secExpect) {
	t.Helper()
	for _, c := range table {
		hits := secHits(pods)
		code, body, pod := secCall(t, w, c.sa, c.method, url(c.path), c.header)
		switch {
		case code != c.want:
			t.Errorf("%s %s %s %v: %d %q, want %d", c.sa, c.method, c.path, c.header, code, body, c.want)
		case c.want == 200 && pod == "":
			t.Errorf("%s %s %s: 200 without a workload's answer", c.sa, c.method, c.path)
		case c.want == 403 && (strings.TrimSpace(body) != "RBAC: access denied" || pod != ""):
			t.Errorf("%s %s %s: 403 %q from %q, want the waypoint's `RBAC: access denied`", c.sa, c.method, c.path, body, pod)
		case c.want == 403 && secHits(pods) != hits:
			t.Errorf("%s %s %s: denied, but a workload was reached", c.sa, c.method, c.path)
		}
	}
}

func secHits(pods []*pod) int64 {
	var n int64
	for _, p := range pods {
		n += p.hits.Load()
	}
	return n
}

// secGRPC calls method on authority as sa and checks the outcome: the name of a pod, or the
// gRPC code when want is not codes.OK.
func secGRPC(t *testing.T, w *world, sa, authority, method string, want codes.Code) {
	t.Helper()
	pod, err := w.grpcCall(sa, authority, method)
	switch {
	case want == codes.OK && (err != nil || pod == ""):
		t.Errorf("gRPC %s as %s: %q %v, want an answer", method, sa, pod, err)
	case want != codes.OK && status.Code(err) != want:
		t.Errorf("gRPC %s as %s: %q %v, want %v", method, sa, pod, err, want)
	case want == codes.PermissionDenied && status.Convert(err).Message() != "RBAC: access denied":
		t.Errorf("gRPC %s as %s: message %q, want `RBAC: access denied`", method, sa, status.Convert(err).Message())
	}
}

// secTCP opens a TCP tunnel to authority as sa: ok says whether the echo must answer; a
// refused connection must reach no workload.
func secTCP(t *testing.T, w *world, sa, authority string, pods []*pod, ok bool) {
	t.Helper()
	hits := secHits(pods)
	pod, err := w.tcpCall(sa, authority)
	switch {
	case ok && err != nil:
		t.Errorf("TCP %s as %s: %v, want the echo", authority, sa, err)
	case !ok && err == nil:
		t.Errorf("TCP %s as %s: answered by %s, want the connection refused", authority, sa, pod)
	case !ok && secHits(pods) != hits:
		t.Errorf("TCP %s as %s: refused, but a workload was reached", authority, sa)
	}
}

// secForeign is a source with identity ns/sa of another namespace than the world's.
var secForeign struct {
	mu      sync.Mutex
	sources map[string]*source
}

func secSourceIn(t *testing.T, w *world, ns, sa string) *source {
	t.Helper()
	secForeign.mu.Lock()
	defer secForeign.mu.Unlock()
	key := w.waypointIP + " " + ns + "/" + sa
	if s := secForeign.sources[key]; s != nil {
		return s
	}
	dir := filepath.Join(env.meshCA, ns, sa)
	if out, err := exec.Command(env.waypoint, "certs", "--out", env.meshCA, ns+"/"+sa).CombinedOutput(); err != nil {
		t.Fatalf("waypoint certs %s/%s: %v: %s", ns, sa, err, out)
	}
	s, err := newSource(dir, net.JoinHostPort(w.waypointIP, "15008"))
	if err != nil {
		t.Fatal(err)
	}
	if secForeign.sources == nil {
		secForeign.sources = map[string]*source{}
	}
	secForeign.sources[key] = s
	t.Cleanup(func() {
		secForeign.mu.Lock()
		delete(secForeign.sources, key)
		secForeign.mu.Unlock()
		s.Close()
	})
	return s
}

// secPlaintextRefused checks that nothing reaches a service without HBONE's mutual TLS: a
// plaintext request to the waypoint's HBONE port gets no HTTP answer, a TLS client without a
// certificate is refused, and the waypoint listens on no service port.
func secPlaintextRefused(t *testing.T, w *world) {
	t.Helper()
	hbone := net.JoinHostPort(w.waypointIP, "15008")
	c, err := net.DialTimeout("tcp", hbone, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", hbone, err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: reviews\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if strings.HasPrefix(string(b), "HTTP/") {
		t.Errorf("plaintext HTTP to %s was answered: %q", hbone, b)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hbone,
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3: the server's refusal of a missing certificate arrives after the client's
		// handshake completes, on the first read.
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		_, err = tc.Read(make([]byte, 1))
		tc.Close()
	}
	if err == nil {
		t.Errorf("TLS without a client certificate to %s was accepted", hbone)
	}
	for _, port := range []string{"9080", "9090", "9300"} {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(w.waypointIP, port), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("the waypoint accepts plaintext on :%s", port)
		}
	}
}

// secTraffic checks HTTP, gRPC and TCP through the waypoint to reviews as productpage.
func secTraffic(t *testing.T, w *world, b *base) {
	t.Helper()
	for i := 0; i < 5; i++ {
		expect(t, w, b, "GET", "/", nil, 200, "")
		secGRPC(t, w, "productpage", b.vip+":9090", "/echo.Echo/Say", codes.OK)
		secTCP(t, w, "productpage", b.vip+":9300", nil, true)
	}
}

// secDetails adds a second Service of the waypoint, details (http 9080), over workload
// details-v1, and returns its URL maker and pod.
func secDetails(t *testing.T, w *world) (func(string) string, *pod) {
	t.Helper()
	p := w.workload("details-v1", "bookinfo-details", map[string]string{"app": "details"}, 9080)
	w.applied(`
apiVersion: v1
kind: Service
metadata:
  name: details
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: details}
  ports:
  - {name: http, port: 9080}
`)
	url := func(path string) string { return "http://" + w.serviceVIP("details") + ":9080" + path }
	w.eventually(30*time.Second, "a request to details through the waypoint", func() error {
		if code, _, err := w.call("productpage", "GET", url("/"), nil); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	return url, p
}

// secNoRBAC checks that the waypoint holds no RBAC filter (the case's yaml is ACKed): istiod
// applied no policy to it.
func secNoRBAC(t *testing.T, w *world) {
	t.Helper()
	dump, err := w.get(w.admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, "envoy.extensions.filters.http.rbac.v3.RBAC") || strings.Contains(dump, "envoy.extensions.filters.network.rbac.v3.RBAC") {
		t.Errorf("the waypoint's config holds an RBAC filter")
	}
}

func init() {
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	catalogue = append(catalogue,
		compatCase{
			name: "authz-allow-service",
			resources: "AuthorizationPolicy ALLOW, targetRefs Service reviews: productpage for GET/HEAD on paths `/api/*`, `*.json`, `/exact`, port 9080, " +
				"when `request.headers[x-token]` is `secret` or `also-secret`; any identity of the namespace on `/public/*`; grpc-client on " +
				"`/echo.Echo/Allowed` port 9090; tcp-client on port 9300",
			checks: "per identity, method, path and header: 200 from a workload or 403 `RBAC: access denied` reaching none; another namespace's " +
				"identity refused on `/public/*`; gRPC: grpc-client's allowed method answers, its other method and productpage get status 7; " +
				"TCP: tcp-client's tunnel echoes, productpage's is closed before any workload",
			yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-allow, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/productpage"]
    to:
    - operation:
        methods: [GET, HEAD]
        paths: ["/api/*", "*.json", "/exact"]
        ports: ["9080"]
    when:
    - key: request.headers[x-token]
      values: ["secret", "also-secret"]
  - from:
    - source:
        namespaces: ["{{NS}}"]
    to:
    - operation:
        paths: ["/public/*"]
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/grpc-client"]
    to:
    - operation:
        paths: ["/echo.Echo/Allowed"]
        ports: ["9090"]
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/tcp-client"]
    to:
    - operation:
        ports: ["9300"]
`,
			check: func(t *testing.T, w *world, b *base) {
				pods := []*pod{b.v1, b.v2}
				tok := header("x-token", "secret")
				secCheck(t, w, b.url, pods, []secExpect{
					{"productpage", "GET", "/api/v1", tok, 200},
					{"productpage", "GET", "/api/v1", header("x-token", "also-secret"), 200},
					{"productpage", "HEAD", "/api/v1", tok, 200},
					{"productpage", "GET", "/api/v1", nil, 403},
					{"productpage", "GET", "/api/v1", header("x-token", "secret2"), 403},
					{"productpage", "POST", "/api/v1", tok, 403},
					{"productpage", "GET", "/data/x.json", tok, 200},
					{"productpage", "GET", "/data/x.jsonp", tok, 403},
					{"productpage", "GET", "/exact", tok, 200},
					{"productpage", "GET", "/exact/", tok, 403},
					{"productpage", "GET", "/apix", tok, 403},
					{"ratings", "GET", "/api/v1", tok, 403},
					{"ratings", "GET", "/public/page", nil, 200},
					{"ratings", "DELETE", "/public/page", nil, 200},
					{"ratings", "GET", "/publicity", nil, 403},
				})
				// Another namespace's identity is not of the namespace.
				code, body, _ := secCallWith(t, secSourceIn(t, w, w.ns+"-other", "productpage"), "GET", b.url("/public/page"), nil)
				if code != 403 || strings.TrimSpace(body) != "RBAC: access denied" {
					t.Errorf("another namespace on /public/page: %d %q, want 403", code, body)
				}
				// gRPC on 9090: the path is /service/method.
				secGRPC(t, w, "grpc-client", b.vip+":9090", "/echo.Echo/Allowed", codes.OK)
				secGRPC(t, w, "grpc-client", b.vip+":9090", "/echo.Echo/Other", codes.PermissionDenied)
				secGRPC(t, w, "productpage", b.vip+":9090", "/echo.Echo/Allowed", codes.PermissionDenied)
				// TCP on 9300: only the rule of ports alone is L4; the others cannot match a
				// connection.
				secTCP(t, w, "tcp-client", b.vip+":9300", pods, true)
				secTCP(t, w, "productpage", b.vip+":9300", pods, false)
				secTCP(t, w, "ratings", b.vip+":9300", pods, false)
			},
		},
		compatCase{
			name: "authz-deny-gateway",
			resources: "AuthorizationPolicy DENY, targetRefs the Gateway `waypoint`: DELETE on notPaths `/safe/*`; notMethods GET, POST, DELETE, HEAD; " +
				"any request of principal `blocked`; a second Service `details` on the waypoint",
			checks: "on both services: GET and POST pass, DELETE is 403 except under `/safe/`, PUT and PATCH are 403, `blocked` is 403 on everything; " +
				"gRPC (a POST) passes, `blocked` gets status 7; TCP: every tunnel is closed (istiod turns a DENY rule's HTTP-only conditions into any for TCP)",
			yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint-deny, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  action: DENY
  rules:
  - to:
    - operation:
        methods: [DELETE]
        notPaths: ["/safe/*"]
  - to:
    - operation:
        notMethods: [GET, POST, DELETE, HEAD]
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/blocked"]
`,
			check: func(t *testing.T, w *world, b *base) {
				details, dp := secDetails(t, w)
				for _, svc := range []struct {
					url  func(string) string
					pods []*pod
				}{{b.url, []*pod{b.v1, b.v2}}, {details, []*pod{dp}}} {
					secCheck(t, w, svc.url, svc.pods, []secExpect{
						{"productpage", "GET", "/x", nil, 200},
						{"productpage", "POST", "/x", nil, 200},
						{"productpage", "HEAD", "/x", nil, 200},
						{"productpage", "DELETE", "/x", nil, 403},
						{"productpage", "DELETE", "/safe/x", nil, 200},
						{"productpage", "DELETE", "/safer", nil, 403},
						{"productpage", "PUT", "/x", nil, 403},
						{"productpage", "PATCH", "/safe/x", nil, 403},
						{"blocked", "GET", "/x", nil, 403},
						{"blocked", "DELETE", "/safe/x", nil, 403},
					})
				}
				secGRPC(t, w, "productpage", b.vip+":9090", "/echo.Echo/Say", codes.OK)
				secGRPC(t, w, "blocked", b.vip+":9090", "/echo.Echo/Say", codes.PermissionDenied)
				secTCP(t, w, "productpage", b.vip+":9300", []*pod{b.v1, b.v2}, false)
				secTCP(t, w, "blocked", b.vip+":9300", []*pod{b.v1, b.v2}, false)
			},
		},
		compatCase{
			name:      "authz-audit",
			resources: "AuthorizationPolicy AUDIT, targetRefs Service reviews: paths `/audited/*`",
			checks: "every request passes (HTTP, gRPC, TCP); the RBAC filter in LOG mode counts the audited requests under the policy " +
				"(`envoy_http_rbac_allowed{policy=\"ns[NS]-policy[audit]-rule[0]\"}`) and the others under `none`; a TCP connection is " +
				"audited under the policy (its HTTP-only condition dropped)",
			yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: AUDIT
  rules:
  - to:
    - operation:
        paths: ["/audited/*"]
`,
			check: func(t *testing.T, w *world, b *base) {
				policy := fmt.Sprintf(`policy="ns[%s]-policy[audit]-rule[0]"`, w.ns)
				audited0 := w.metric("envoy_http_rbac_allowed", policy)
				none0 := w.metric("envoy_http_rbac_allowed", `policy="none"`)
				tcp0 := w.metric("envoy_tcp_rbac_allowed", policy)
				for i := 0; i < 3; i++ {
					expect(t, w, b, "GET", "/audited/x", nil, 200, "")
				}
				for i := 0; i < 2; i++ {
					expect(t, w, b, "POST", "/other", nil, 200, "")
				}
				secTCP(t, w, "ratings", b.vip+":9300", nil, true)
				if n := w.metric("envoy_http_rbac_allowed", policy) - audited0; n != 3 {
					t.Errorf("audited requests counted %v, want 3", n)
				}
				if n := w.metric("envoy_http_rbac_allowed", `policy="none"`) - none0; n != 2 {
					t.Errorf("requests not audited counted %v, want 2", n)
				}
				if n := w.metric("envoy_tcp_rbac_allowed", policy) - tcp0; n != 1 {
					t.Errorf("audited TCP connections counted %v, want 1", n)
				}
				if n := w.metric("envoy_http_rbac_denied") + w.metric("envoy_tcp_rbac_denied"); n != 0 {
					t.Errorf("%v denials under an AUDIT policy", n)
				}
			},
		},
		compatCase{
			name:      "authz-custom-http",
			resources: "AuthorizationPolicy CUSTOM, provider `ext-authz-http` (Service ext-authz.istio-system:8000), on paths `/ext/*`",
			checks:    "requests under `/ext/` are checked by the HTTP authorization service (a workload behind Service ext-authz.istio-system): with `x-ext-authz: allow` 200, without it the service's 403 (its header and body); outside `/ext/` no check is made",
			yaml: extAuthzYAML + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: CUSTOM
  provider: {name: ext-authz-http}
  rules:
  - to:
    - operation:
        paths: ["/ext/*"]
`,
			check: func(t *testing.T, w *world, b *base) { checkExtAuthz(t, w, b, false) },
		},
		compatCase{
			name:      "authz-custom-grpc",
			resources: "AuthorizationPolicy CUSTOM, provider `ext-authz-grpc` (Service ext-authz.istio-system:9000), on paths `/ext/*`",
			checks:    "requests under `/ext/` are checked by the gRPC authorization service (a workload behind Service ext-authz.istio-system): with `x-ext-authz: allow` 200 and the service's header upstream, without it the service's 403 (its header and body); outside `/ext/` no check is made",
			yaml: extAuthzYAML + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: CUSTOM
  provider: {name: ext-authz-grpc}
  rules:
  - to:
    - operation:
        paths: ["/ext/*"]
`,
			check: func(t *testing.T, w *world, b *base) { checkExtAuthz(t, w, b, true) },
		},
		compatCase{
			name: "authz-jwt",
			resources: "RequestAuthentication, targetRefs Service reviews, issuer with an inline jwks; AuthorizationPolicy ALLOW when " +
				"`request.auth.claims[groups]` is `group1`",
			checks: "a token with the claim (a list or a string) passes; one without it, with another group, or no token is refused 403 " +
				"(RBAC on the payload jwt_authn puts in the dynamic metadata); a token signed by another key or expired is refused 401; " +
				"the token does not reach the workload",
			yaml:  secJWT(`jwks: '` + secJWKS + `'`),
			check: secJWTCheck,
		},
		compatCase{
			name:      "authz-jwt-jwksuri",
			resources: "RequestAuthentication, targetRefs Service reviews, issuer with a jwksUri (istiod fetches it and inlines the keys); the same AuthorizationPolicy",
			checks:    "as authz-jwt",
			setup:     secServeJWKS,
			yaml:      secJWT(`jwksUri: "http://{{NET}}.99:8080/jwks.json"`),
			check:     secJWTCheck,
		},
		compatCase{
			name: "authz-namespace-wide",
			resources: "AuthorizationPolicy DENY for principal `nswide-denied` with no targetRefs nor selector (namespace-wide), and DENY for " +
				"`selector-denied` with a selector matching the waypoint's pod labels",
			checks: "istiod applies neither to the waypoint (they are ztunnel's, and a selector does not reach a waypoint): both identities " +
				"get 200 through it on HTTP, gRPC and TCP, and the waypoint holds no RBAC filter",
			yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: namespace-wide, namespace: "{{NS}}"}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/nswide-denied"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint-selector, namespace: "{{NS}}"}
spec:
  selector:
    matchLabels: {gateway.networking.k8s.io/gateway-name: waypoint}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/selector-denied"]
`,
			check: func(t *testing.T, w *world, b *base) {
				for _, sa := range []string{"nswide-denied", "selector-denied"} {
					secCheck(t, w, b.url, nil, []secExpect{{sa, "GET", "/", nil, 200}, {sa, "DELETE", "/x", nil, 200}})
					secGRPC(t, w, sa, b.vip+":9090", "/echo.Echo/Say", codes.OK)
					secTCP(t, w, sa, b.vip+":9300", nil, true)
				}
				secNoRBAC(t, w)
			},
		},
		compatCase{
			name:      "authz-root-namespace",
			resources: "AuthorizationPolicy DENY in istio-system (the root namespace: mesh-wide) for principal `root-denied` of the case's namespace",
			checks:    "istiod does not apply a mesh-wide policy to a waypoint: `root-denied` gets 200 through it, and the waypoint holds no RBAC filter",
			yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: "root-{{NS}}", namespace: istio-system}
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/root-denied"]
`,
			check: func(t *testing.T, w *world, b *base) {
				t.Cleanup(func() {
					w.remove(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: "root-{{NS}}", namespace: istio-system}
`)
				})
				secCheck(t, w, b.url, nil, []secExpect{{"root-denied", "GET", "/", nil, 200}})
				secTCP(t, w, "root-denied", b.vip+":9300", nil, true)
				secNoRBAC(t, w)
			},
		},
		compatCase{
			name: "peerauth-strict",
			resources: "PeerAuthentication STRICT for the namespace, and one for app=reviews with port-level STRICT on 9080 and 9300; an " +
				"AuthorizationPolicy ALLOW of principal productpage (so the peer's identity is checked)",
			checks: "pushes ACKed; HTTP, gRPC and TCP through the waypoint over HBONE; another identity refused; a plaintext request to the " +
				"HBONE port gets no answer, TLS without a client certificate is refused, the waypoint listens on no service port",
			yaml: `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: "{{NS}}"}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  selector:
    matchLabels: {app: reviews}
  mtls: {mode: STRICT}
  portLevelMtls:
    9080: {mode: STRICT}
    9300: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-only, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/productpage"]
`,
			check: func(t *testing.T, w *world, b *base) {
				secTraffic(t, w, b)
				secCheck(t, w, b.url, []*pod{b.v1, b.v2}, []secExpect{{"ratings", "GET", "/", nil, 403}})
				secTCP(t, w, "ratings", b.vip+":9300", []*pod{b.v1, b.v2}, false)
				secPlaintextRefused(t, w)
			},
		},
		compatCase{
			name:      "peerauth-permissive",
			resources: "PeerAuthentication PERMISSIVE for the namespace, and one for app=reviews, PERMISSIVE with port-level DISABLE on 9080",
			checks: "pushes ACKed; HTTP, gRPC and TCP through the waypoint over HBONE still (the waypoint has no plaintext inbound to " +
				"permit): a plaintext request to the HBONE port gets no answer, TLS without a client certificate is refused, the waypoint " +
				"listens on no service port",
			yaml: `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: "{{NS}}"}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  selector:
    matchLabels: {app: reviews}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    9080: {mode: DISABLE}
`,
			check: func(t *testing.T, w *world, b *base) {
				secTraffic(t, w, b)
				secPlaintextRefused(t, w)
			},
		},
		compatCase{
			name: "telemetry-access-log",
			resources: "Telemetry, targetRefs the Gateway `waypoint`: accessLogging providers `envoy` (Istio's built-in text format to " +
				"/dev/stdout) and `envoy-json` (the mesh config's JSON labels path, code, upstream); istiod adds its filters (NR on every " +
				"listener, codes of 400 and more on connect_terminate, UF on connect_originate's tunnel)",
			checks: "pushes ACKed; the waypoint's stdout gets, per HTTP request, Istio's text line with method, path and code and a JSON " +
				"line with the path, the code and the workload that answered (a 503 from the workload too); a TCP connection gets a text line " +
				"with the workload's address; a CONNECT to an address no chain takes gets lines flagged NR",
			yaml: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  accessLogging:
  - providers: [{name: envoy}, {name: envoy-json}]
`,
			check: func(t *testing.T, w *world, b *base) {
				secLogsInForce(t, w, b)
				expect(t, w, b, "GET", "/logged/1", nil, 200, "")
				expect(t, w, b, "POST", "/logged/2", http.Header{"X-Echo-Status": {"503"}}, 503, "")
				secTCP(t, w, "productpage", b.vip+":9300", nil, true)
				// An address no filter chain of main_internal takes.
				if _, err := w.tcpCall("productpage", w.net+".99:7777"); err == nil {
					t.Errorf("a tunnel to an address of no service was answered")
				}
				secLogLines(t, w, `"GET /logged/1 HTTP/1.1" 200 `, `"POST /logged/2 HTTP/1.1" 503 `, `{"code":200,"path":"/logged/1","upstream":"`+w.net+`.1`,
					`{"code":503,"path":"/logged/2","upstream":"`+w.net+`.1`, `:9300" inbound-vip|9300|tcp|reviews.`, ` 0 NR - filter_chain_not_found `)
			},
		},
		compatCase{
			name:      "telemetry-access-log-namespace",
			resources: "Telemetry for the whole namespace (no targetRefs, no selector): accessLogging provider `envoy`",
			checks:    "pushes ACKed; the waypoint writes Istio's text line per request, with the path and the code",
			yaml: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  accessLogging:
  - providers: [{name: envoy}]
`,
			check: func(t *testing.T, w *world, b *base) {
				secLogsInForce(t, w, b)
				expect(t, w, b, "GET", "/ns-logged", nil, 200, "")
				expect(t, w, b, "GET", "/ns-missing", http.Header{"X-Echo-Status": {"404"}}, 404, "")
				secLogLines(t, w, `"GET /ns-logged HTTP/1.1" 200 `, `"GET /ns-missing HTTP/1.1" 404 `)
			},
		},
		compatCase{
			name:      "telemetry-access-log-filter",
			resources: "Telemetry, targetRefs the Gateway: accessLogging provider `envoy` with `filter.expression: response.code >= 400` (CEL)",
			checks:    "only the requests answered 400 or more are logged: a 404 and a 503 get a line, a 200 none",
			yaml: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  accessLogging:
  - providers: [{name: envoy}]
    filter:
      expression: "response.code >= 400"
`,
			check: func(t *testing.T, w *world, b *base) {
				// The filter is in force once a request answered 404 is logged. The 200s are sent
				// before the last 4xx/5xx, so that once its line is written theirs would be too.
				probe := 0
				w.eventually(30*time.Second, "the filtered access log in force", func() error {
					probe++
					p := fmt.Sprintf("/filter-probe/%d", probe)
					expect(t, w, b, "GET", p, http.Header{"X-Echo-Status": {"404"}}, 404, "")
					time.Sleep(1500 * time.Millisecond) // the sinks flush every second
					out, _ := os.ReadFile(filepath.Join(w.dir, "waypoint.log"))
					if !strings.Contains(string(out), "GET "+p+" HTTP/1.1") {
						return fmt.Errorf("no line for %s", p)
					}
					return nil
				})
				expect(t, w, b, "GET", "/filtered/ok", nil, 200, "")
				expect(t, w, b, "GET", "/filtered/missing", http.Header{"X-Echo-Status": {"404"}}, 404, "")
				expect(t, w, b, "GET", "/filtered/unavailable", http.Header{"X-Echo-Status": {"503"}}, 503, "")
				secLogLines(t, w, `"GET /filtered/missing HTTP/1.1" 404 `, `"GET /filtered/unavailable HTTP/1.1" 503 `)
				out, _ := os.ReadFile(filepath.Join(w.dir, "waypoint.log"))
				if strings.Contains(string(out), "/filtered/ok") {
					t.Errorf("a request answered 200 was logged under response.code >= 400")
				}
			},
		},
		compatCase{
			name: "telemetry-access-log-otel",
			resources: "Service otel-collector.istio-system with a WorkloadEntry on the loopback (an OTLP gRPC logs receiver, plaintext); " +
				"Telemetry, targetRefs the Gateway: accessLogging provider `otel-als` (OpenTelemetry logs over gRPC to otel-collector.istio-system:4317)",
			checks: "a log record per request at the collector, its body Istio's default access log line with the method, path and code",
			yaml: secOtelCollectorService + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  accessLogging:
  - providers: [{name: otel-als}]
`,
			check: secCheckOTelLogs,
		},
		compatCase{
			name: "telemetry-tracing",
			resources: "Service otel-collector.istio-system with a WorkloadEntry on the loopback (an OTLP gRPC receiver, plaintext); " +
				"Telemetry, targetRefs the Gateway: tracing provider `otel-tracing`, randomSamplingPercentage 100, custom tags literal " +
				"`lit: v` and header `user` from x-user (default `none`); then the same at 0%",
			checks: "at 100%: a server span per request reaches the receiver with the request's path, the custom tags and the service " +
				"`waypoint.NS`; at 0%: no span for new requests (a request with a sampled traceparent is still traced, as its parent decided)",
			yaml: secOtelCollectorService + `---
` + secTracing(100),
			check: secCheckTracing,
		},
		compatCase{
			name: "telemetry-tracing-zipkin",
			resources: "Service zipkin.istio-system with a WorkloadEntry on the world's loopback (a Zipkin v2 JSON receiver, plaintext); " +
				"Telemetry, targetRefs the Gateway: tracing provider `zipkin`, randomSamplingPercentage 100",
			checks: "server spans per request POSTed to /api/v2/spans as JSON with the request's URL and the service `waypoint.NS`, " +
				"128-bit trace ids; a request with B3 headers keeps its trace and parent; B3 goes upstream (x-b3-traceid, x-b3-spanid, x-b3-sampled)",
			yaml: `
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec:
  selector: {app: zipkin}
  ports:
  - {name: http, port: 9411}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tracing, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 100
`,
			check: secCheckZipkin,
		},
		compatCase{
			name: "telemetry-tracing-otel-http",
			resources: "Service otel-collector.istio-system with a WorkloadEntry on the loopback (an OTLP/HTTP receiver on 4318, plaintext); " +
				"Telemetry, targetRefs the Gateway: tracing provider `otel-http-tracing` (OTLP over HTTP, path /v1/traces), randomSamplingPercentage 100",
			checks: "a server span per request POSTed as OTLP protobuf to /v1/traces, with the request's path and the service `waypoint.NS`",
			yaml: secOtelCollectorService + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tracing, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  tracing:
  - providers: [{name: otel-http-tracing}]
    randomSamplingPercentage: 100
`,
			check: secCheckOTLPHTTP,
		},
		compatCase{
			name: "telemetry-tracing-resource-detectors",
			resources: "Service otel-collector.istio-system with a WorkloadEntry on the loopback (an OTLP/HTTP receiver on 4318, plaintext); " +
				"Telemetry, targetRefs the Gateway: tracing provider `otel-http-resources` (OTLP over HTTP, resourceDetectors environment and " +
				"dynatrace), randomSamplingPercentage 100; the waypoint started with OTEL_RESOURCE_ATTRIBUTES " +
				"`deployment.environment=live,team=mesh,malformed,service.version=1.2`",
			checks: "server spans POSTed as OTLP protobuf whose resource has the environment's attributes (the malformed pair skipped; " +
				"no Dynatrace enrichment file, which is fine) beside the service `waypoint.NS`",
			waypointEnv: []string{"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=live,team=mesh,malformed,service.version=1.2"},
			yaml: secOtelCollectorService + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tracing, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  tracing:
  - providers: [{name: otel-http-resources}]
    randomSamplingPercentage: 100
`,
			check: secCheckResourceDetectors,
		},
		compatCase{
			name: "telemetry-metrics",
			resources: "Telemetry, targetRefs the Gateway: metrics provider `prometheus` (istiod adds its istio.stats filter to every chain); " +
				"then overrides: REQUEST_SIZE and TCP_OPENED_CONNECTIONS disabled, tag request_protocol removed from REQUEST_COUNT",
			checks: "pushes ACKed; first the standard metrics with request_protocol `http` and `tcp`; with the overrides, new requests " +
				"are counted in istio_requests_total without request_protocol, istio_request_bytes gets no sample while " +
				"istio_response_bytes does, TCP connections are counted closed but not opened",
			yaml: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  metrics:
  - providers: [{name: prometheus}]
`,
			check: func(t *testing.T, w *world, b *base) {
				dest := fmt.Sprintf(`destination_service="reviews.%s.svc.cluster.local"`, w.ns)
				expect(t, w, b, "GET", "/counted", nil, 200, "")
				secTCP(t, w, "productpage", b.vip+":9300", nil, true)
				w.eventually(5*time.Second, "the standard metrics", func() error {
					if w.metric("istio_requests_total", dest, `request_protocol="http"`) == 0 ||
						w.metric("istio_tcp_connections_closed_total", `request_protocol="tcp"`) == 0 {
						return fmt.Errorf("no HTTP request or TCP connection counted")
					}
					return nil
				})
				w.applied(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_SIZE}
      disabled: true
    - match: {metric: TCP_OPENED_CONNECTIONS}
      disabled: true
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        request_protocol: {operation: REMOVE}
`)
				// syncz may show the push ACKed before the one that brings the overrides (debounced):
				// wait until a request is counted without request_protocol.
				w.eventually(30*time.Second, "the overrides in force", func() error {
					n := w.metric("istio_requests_total", dest, `request_protocol=""`)
					expect(t, w, b, "GET", "/counted", nil, 200, "")
					if w.metric("istio_requests_total", dest, `request_protocol=""`) == n {
						return fmt.Errorf("not yet")
					}
					return nil
				})
				none0 := w.settledMetric("istio_requests_total", dest, `request_protocol=""`) // the requests above all counted
				http0 := w.metric("istio_requests_total", dest, `request_protocol="http"`)
				reqBytes0, respBytes0 := w.metric("istio_request_bytes_count", dest), w.metric("istio_response_bytes_count", dest)
				opened0, closed0 := w.metric("istio_tcp_connections_opened_total"), w.metric("istio_tcp_connections_closed_total")
				for i := 0; i < 3; i++ {
					expect(t, w, b, "GET", "/counted", nil, 200, "")
				}
				secTCP(t, w, "productpage", b.vip+":9300", nil, true)
				w.eventually(5*time.Second, "the TCP connection counted closed", func() error {
					if w.metric("istio_tcp_connections_closed_total") == closed0 {
						return fmt.Errorf("not yet")
					}
					return nil
				})
				w.eventually(5*time.Second, "the 3 requests counted", func() error {
					if n := w.metric("istio_requests_total", dest, `request_protocol=""`) - none0; n != 3 {
						return fmt.Errorf("requests counted without request_protocol: %v, want 3", n)
					}
					return nil
				})
				if n := w.metric("istio_requests_total", dest, `request_protocol="http"`) - http0; n != 0 {
					t.Errorf("requests counted with request_protocol: %v, want 0", n)
				}
				if n := w.metric("istio_request_bytes_count", dest) - reqBytes0; n != 0 {
					t.Errorf("istio_request_bytes disabled, but %v samples", n)
				}
				if n := w.metric("istio_response_bytes_count", dest) - respBytes0; n != 3 {
					t.Errorf("istio_response_bytes: %v samples, want 3", n)
				}
				if n := w.metric("istio_tcp_connections_opened_total") - opened0; n != 0 {
					t.Errorf("istio_tcp_connections_opened_total disabled, but counted %v", n)
				}
			},
		},
		compatCase{
			name: "telemetry-metrics-tag-value",
			resources: "Telemetry, targetRefs the Gateway: metrics provider `prometheus`, REQUEST_COUNT tagOverrides `custom_dim: {value: request.host}` (a CEL expression); " +
				"then the same tag on every metric (no match)",
			checks: "pushes ACKed; istio_requests_total carries custom_dim with the request's host (the service VIP:9080), istio_request_duration_milliseconds " +
				"keeps Istio's labels; with every metric, TCP connections are counted opened and closed with custom_dim `unknown` (no request)",
			yaml: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        custom_dim: {value: "request.host"}
`,
			check: func(t *testing.T, w *world, b *base) {
				dim := fmt.Sprintf(`custom_dim="%s:9080"`, b.vip)
				dest := fmt.Sprintf(`destination_service="reviews.%s.svc.cluster.local"`, w.ns)
				// The push that brings the Telemetry may still be debounced: ask until a request is
				// counted with the tag.
				w.eventually(30*time.Second, "istio_requests_total with custom_dim", func() error {
					expect(t, w, b, "GET", "/tagged", nil, 200, "")
					if w.metric("istio_requests_total", dest, dim) == 0 {
						return fmt.Errorf("no request counted with %s", dim)
					}
					return nil
				})
				// The baseline once the requests above are all counted.
				n0 := w.settledMetric("istio_requests_total", dest, dim)
				for i := 0; i < 3; i++ {
					expect(t, w, b, "GET", "/tagged", nil, 200, "")
				}
				// A request is counted once its stream ends, which may be just after its client has
				// read the response.
				w.eventually(5*time.Second, "the 3 requests counted with "+dim, func() error {
					if n := w.metric("istio_requests_total", dest, dim) - n0; n != 3 {
						return fmt.Errorf("requests counted with %s: %v, want 3", dim, n)
					}
					return nil
				})
				if n := w.metric("istio_request_duration_milliseconds_count", dest, `custom_dim=`); n != 0 {
					t.Errorf("istio_request_duration_milliseconds has custom_dim (%v samples): only REQUEST_COUNT was overridden", n)
				}
				// Every metric (no match: ALL_METRICS), TCP ones too: istiod renders the dimension into the
				// TCP chains' stats filter as well. A TCP connection has no request.host: "unknown".
				w.applied(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        custom_dim: {value: "request.host"}
`)
				w.eventually(30*time.Second, "a TCP connection counted with custom_dim", func() error {
					secTCP(t, w, "productpage", b.vip+":9300", nil, true)
					if w.metric("istio_tcp_connections_closed_total", `request_protocol="tcp"`, `custom_dim="unknown"`) == 0 {
						return fmt.Errorf("no TCP connection counted with custom_dim=\"unknown\"")
					}
					return nil
				})
				if w.metric("istio_tcp_connections_opened_total", `custom_dim="unknown"`) == 0 {
					t.Errorf("istio_tcp_connections_opened_total: no series with custom_dim")
				}
			},
		},
	)
}

// secOtelCollectorService is the Service the OpenTelemetry providers of the mesh config name,
// selecting app=otel-collector (secOTLPReceiver's WorkloadEntries). Every case applies it alike
// and none deletes it, so that cases may share it.
const secOtelCollectorService = `
apiVersion: v1
kind: Service
metadata: {name: otel-collector, namespace: istio-system}
spec:
  selector: {app: otel-collector}
  ports:
  - {name: grpc-otlp, port: 4317}
  - {name: http-otlp, port: 4318}
`

// secLogLines waits until the waypoint's output (stdout and stderr, w.dir/waypoint.log) holds
// a line containing each of want.
func secLogLines(t *testing.T, w *world, want ...string) {
	t.Helper()
	path := filepath.Join(w.dir, "waypoint.log")
	w.eventually(10*time.Second, "access log lines", func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range want {
			if !strings.Contains(string(b), s) {
				return fmt.Errorf("no line with %q in %s", s, path)
			}
		}
		return nil
	})
}

// secLogsInForce waits until the waypoint logs requests: istiod's syncz may show the pushes
// before the Telemetry's ACKed while the one that brings it is still being debounced. Each
// probe has a path of its own, so that a line is the probe's own.
func secLogsInForce(t *testing.T, w *world, b *base) {
	t.Helper()
	path := filepath.Join(w.dir, "waypoint.log")
	probe := 0
	w.eventually(30*time.Second, "access logging in force", func() error {
		probe++
		p := fmt.Sprintf("/log-probe/%d", probe)
		if code, _, err := w.call("productpage", "GET", b.url(p), nil); err != nil || code != 200 {
			return fmt.Errorf("GET %s: %d %v", p, code, err)
		}
		deadline := time.Now().Add(2 * time.Second) // the sinks flush every second
		for {
			if out, err := os.ReadFile(path); err == nil && strings.Contains(string(out), "GET "+p+" HTTP/1.1") {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no line for %s in %s", p, path)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// secJWT is a RequestAuthentication with the jwtRules key source given, and a policy on its
// claims.
func secJWT(keys string) string {
	return `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  jwtRules:
  - issuer: "testing@secure.istio.io"
    ` + keys + `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Service, group: "", name: reviews}
  action: ALLOW
  rules:
  - when:
    - key: request.auth.claims[groups]
      values: ["group1"]
`
}

// secTracing is the tracing Telemetry of the telemetry-tracing case at a sampling percentage.
func secTracing(percent int) string {
	return fmt.Sprintf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tracing, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  tracing:
  - providers: [{name: otel-tracing}]
    randomSamplingPercentage: %d
    customTags:
      lit: {literal: {value: "v"}}
      user: {header: {name: x-user, defaultValue: none}}
`, percent)
}

// secCollector is an OTLP gRPC trace receiver keeping every span with its resource's
// service.name.
type secCollector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []secSpan
}

type secSpan struct {
	service  string
	resource map[string]string // the resource's string attributes
	span     *tracepb.Span
}

func (c *secCollector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, secSpan{res["service.name"], res, sp})
			}
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// find returns the server spans whose http.url holds path.
func (c *secCollector) find(path string) []secSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []secSpan
	for _, s := range c.spans {
		if s.span.GetKind() == tracepb.Span_SPAN_KIND_SERVER && strings.Contains(secAttrs(s.span)["http.url"], path) {
			out = append(out, s)
		}
	}
	return out
}

func secAttrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// secCheckTracing checks the spans of requests at the OTLP gRPC receiver at 100%, then turns
// sampling to 0%.
func secCheckTracing(t *testing.T, w *world, b *base) {
	col := secOTLPReceiver(t, w, "otel-collector-{{NS}}").traces

	// At 100%: a server span per request, with the path and the custom tags. The collector's
	// endpoint arrives with EDS: the first spans may be dropped before it does.
	w.eventually(30*time.Second, "a span at the collector", func() error {
		expect(t, w, b, "GET", "/traced/warm", nil, 200, "")
		if len(col.find("/traced/warm")) == 0 {
			return fmt.Errorf("no span yet")
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		expect(t, w, b, "GET", fmt.Sprintf("/traced/%d", i), http.Header{"X-User": {"jason"}}, 200, "")
	}
	expect(t, w, b, "GET", "/traced/anonymous", nil, 200, "")
	w.eventually(10*time.Second, "the spans of the traced requests", func() error {
		for i := 0; i < 3; i++ {
			if len(col.find(fmt.Sprintf("/traced/%d", i))) != 1 {
				return fmt.Errorf("no span for /traced/%d", i)
			}
		}
		if len(col.find("/traced/anonymous")) != 1 {
			return fmt.Errorf("no span for /traced/anonymous")
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		s := col.find(fmt.Sprintf("/traced/%d", i))[0]
		a := secAttrs(s.span)
		if a["lit"] != "v" || a["user"] != "jason" || s.service != "waypoint."+w.ns || a["http.method"] != "GET" {
			t.Errorf("span of /traced/%d: service %q, attributes %v; want lit=v, user=jason, service waypoint.%s", i, s.service, a, w.ns)
		}
	}
	if a := secAttrs(col.find("/traced/anonymous")[0].span); a["user"] != "none" {
		t.Errorf("span without x-user: user=%q, want the default none", a["user"])
	}

	// At 0%: no span for new requests. A request whose traceparent says sampled is traced
	// (its parent decided); it is sent last, so that once its span arrives, any span of the
	// requests before it would have too (one batching exporter, in order).
	w.applied(secTracing(0))
	for i := 0; i < 5; i++ {
		expect(t, w, b, "GET", fmt.Sprintf("/untraced/%d", i), nil, 200, "")
	}
	parent := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	expect(t, w, b, "GET", "/parent-sampled", parent, 200, "")
	w.eventually(10*time.Second, "the span of the request with a sampled parent", func() error {
		if len(col.find("/parent-sampled")) == 0 {
			return fmt.Errorf("no span yet")
		}
		return nil
	})
	if s := col.find("/parent-sampled")[0].span; fmt.Sprintf("%x", s.GetTraceId()) != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the sampled parent's span has trace id %x", s.GetTraceId())
	}
	if n := len(col.find("/untraced/")); n != 0 {
		t.Errorf("%d spans at 0%%", n)
	}
}

// secZipkin is a Zipkin v2 JSON receiver keeping every span.
type secZipkin struct {
	mu    sync.Mutex
	spans []secZipkinSpan
}

type secZipkinSpan struct {
	TraceID       string                       `json:"traceId"`
	ID            string                       `json:"id"`
	ParentID      string                       `json:"parentId"`
	Kind          string                       `json:"kind"`
	Name          string                       `json:"name"`
	LocalEndpoint struct{ ServiceName string } `json:"localEndpoint"`
	Tags          map[string]string            `json:"tags"`
}

func (z *secZipkin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var spans []secZipkinSpan
	if r.Method != "POST" || r.URL.Path != "/api/v2/spans" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not a Zipkin v2 JSON POST", 400)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&spans); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	z.mu.Lock()
	z.spans = append(z.spans, spans...)
	z.mu.Unlock()
	w.WriteHeader(202)
}

// find returns the server spans whose http.url holds path.
func (z *secZipkin) find(path string) []secZipkinSpan {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []secZipkinSpan
	for _, s := range z.spans {
		if s.Kind == "SERVER" && strings.Contains(s.Tags["http.url"], path) {
			out = append(out, s)
		}
	}
	return out
}

// secCheckZipkin runs a Zipkin receiver where istiod's zipkin cluster points (a WorkloadEntry
// of Service zipkin.istio-system on the world's loopback) and checks the spans of requests and
// the B3 headers the backend gets.
func secCheckZipkin(t *testing.T, w *world, b *base) {
	addr := w.net + ".51"
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "9411"))
	if err != nil {
		t.Fatal(err)
	}
	col := &secZipkin{}
	srv := &http.Server{Handler: col}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	entry := `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: "zipkin-{{NS}}", namespace: istio-system}
spec:
  address: "{{NET}}.51"
  labels: {app: zipkin}
`
	w.applied(entry)
	t.Cleanup(func() { w.remove(entry) })

	// The collector's endpoint arrives with EDS: the first spans may be dropped before it does.
	w.eventually(30*time.Second, "a span at the Zipkin collector", func() error {
		expect(t, w, b, "GET", "/zipkin/warm", nil, 200, "")
		if len(col.find("/zipkin/warm")) == 0 {
			return fmt.Errorf("no span yet")
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		expect(t, w, b, "GET", fmt.Sprintf("/zipkin/%d", i), nil, 200, "")
	}
	const tid, parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	b3 := http.Header{"X-B3-Traceid": {tid}, "X-B3-Spanid": {parent}, "X-B3-Sampled": {"1"}}
	// The echo backend answers with the headers it got: the B3 context the waypoint sent.
	code, echoed, err := w.call("productpage", "GET", b.url("/zipkin/b3"), b3)
	if err != nil || code != 200 {
		t.Fatalf("GET /zipkin/b3: %d %v", code, err)
	}
	w.eventually(10*time.Second, "the spans of the traced requests", func() error {
		for _, p := range []string{"/zipkin/0", "/zipkin/1", "/zipkin/2", "/zipkin/b3"} {
			if len(col.find(p)) != 1 {
				return fmt.Errorf("no span for %s", p)
			}
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		s := col.find(fmt.Sprintf("/zipkin/%d", i))[0]
		if len(s.TraceID) != 32 || s.ParentID != "" || s.LocalEndpoint.ServiceName != "waypoint."+w.ns || s.Tags["http.method"] != "GET" {
			t.Errorf("span of /zipkin/%d: %+v; want a 128-bit root span of service waypoint.%s", i, s, w.ns)
		}
	}
	s := col.find("/zipkin/b3")[0]
	if s.TraceID != tid || s.ParentID != parent || s.ID == parent {
		t.Errorf("span of the request with B3: %+v; want trace %s, parent %s", s, tid, parent)
	}
	// The waypoint's client span goes upstream, child of its server span.
	h := echoed.Headers
	if h.Get("X-B3-Traceid") != tid || h.Get("X-B3-Sampled") != "1" || len(h.Get("X-B3-Spanid")) != 16 ||
		h.Get("X-B3-Spanid") == parent || h.Get("X-B3-Parentspanid") != s.ID {
		t.Errorf("the backend got B3 %v; want trace %s, a new span id, parent %s (the server span), sampled", h, tid, s.ID)
	}
}

// secCheckOTLPHTTP checks that the spans of requests reach the OTLP/HTTP receiver.
func secCheckOTLPHTTP(t *testing.T, w *world, b *base) {
	col := secOTLPReceiver(t, w, "otel-collector-http-{{NS}}").httpTraces

	// The collector's endpoint arrives with EDS: the first spans may be dropped before it does.
	w.eventually(30*time.Second, "a span at the OTLP/HTTP receiver", func() error {
		expect(t, w, b, "GET", "/otlp-http/warm", nil, 200, "")
		if len(col.find("/otlp-http/warm")) == 0 {
			return fmt.Errorf("no span yet")
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		expect(t, w, b, "GET", fmt.Sprintf("/otlp-http/%d", i), nil, 200, "")
	}
	w.eventually(10*time.Second, "the spans of the traced requests", func() error {
		for i := 0; i < 3; i++ {
			if len(col.find(fmt.Sprintf("/otlp-http/%d", i))) != 1 {
				return fmt.Errorf("no span for /otlp-http/%d", i)
			}
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		s := col.find(fmt.Sprintf("/otlp-http/%d", i))[0]
		if a := secAttrs(s.span); s.service != "waypoint."+w.ns || a["http.method"] != "GET" || len(s.span.GetTraceId()) != 16 {
			t.Errorf("span of /otlp-http/%d: service %q, attributes %v; want service waypoint.%s", i, s.service, a, w.ns)
		}
	}
}

// secCheckResourceDetectors checks that the spans' resource carries what the environment
// resource detector read from the waypoint's OTEL_RESOURCE_ATTRIBUTES.
func secCheckResourceDetectors(t *testing.T, w *world, b *base) {
	col := secOTLPReceiver(t, w, "otel-collector-res-{{NS}}").httpTraces
	w.eventually(30*time.Second, "a span at the OTLP/HTTP receiver", func() error {
		expect(t, w, b, "GET", "/otlp-res/warm", nil, 200, "")
		if len(col.find("/otlp-res/warm")) == 0 {
			return fmt.Errorf("no span yet")
		}
		return nil
	})
	expect(t, w, b, "GET", "/otlp-res/1", nil, 200, "")
	w.eventually(10*time.Second, "the span of the traced request", func() error {
		if len(col.find("/otlp-res/1")) != 1 {
			return fmt.Errorf("no span for /otlp-res/1")
		}
		return nil
	})
	s := col.find("/otlp-res/1")[0]
	want := map[string]string{"service.name": "waypoint." + w.ns, "deployment.environment": "live", "team": "mesh", "service.version": "1.2"}
	for k, v := range want {
		if s.resource[k] != v {
			t.Errorf("resource %v: %s is %q, want %q", s.resource, k, s.resource[k], v)
		}
	}
	if _, ok := s.resource["malformed"]; ok {
		t.Errorf("resource %v: the malformed pair was kept", s.resource)
	}
}

// secOTLP is the package's OpenTelemetry collector stand-in, shared by every world: the
// Service otel-collector.istio-system that the mesh config's providers name is one for all
// namespaces, so every case's WorkloadEntry points at this one address (liveNet.0.50), and a
// waypoint's exports reach it whichever endpoint it picks. It serves OTLP gRPC traces and logs
// on 4317 and OTLP/HTTP traces on 4318; the cases tell their records apart by path. It runs
// until the process ends.
type secOTLP struct {
	traces, httpTraces *secCollector
	logs               *secLogs
}

var secOTLPOnce struct {
	sync.Once
	r   *secOTLP
	err error
}

// secOTLPReceiver starts the receiver on first use and applies a WorkloadEntry named name
// (templated) for it, removed when the case ends.
func secOTLPReceiver(t *testing.T, w *world, name string) *secOTLP {
	t.Helper()
	addr := liveNet + ".0.50"
	secOTLPOnce.Do(func() {
		r := &secOTLP{traces: &secCollector{}, httpTraces: &secCollector{}, logs: &secLogs{}}
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, "4317"))
		if err != nil {
			secOTLPOnce.err = err
			return
		}
		lnHTTP, err := net.Listen("tcp", net.JoinHostPort(addr, "4318"))
		if err != nil {
			ln.Close()
			secOTLPOnce.err = err
			return
		}
		srv := grpc.NewServer()
		collectorpb.RegisterTraceServiceServer(srv, r.traces)
		logcollpb.RegisterLogsServiceServer(srv, r.logs)
		go srv.Serve(ln)
		go (&http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			body, err := io.ReadAll(req.Body)
			var exp collectorpb.ExportTraceServiceRequest
			if err != nil || req.Method != "POST" || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" ||
				proto.Unmarshal(body, &exp) != nil {
				http.Error(rw, "not an OTLP/HTTP protobuf export", 400)
				return
			}
			resp, _ := r.httpTraces.Export(req.Context(), &exp)
			out, _ := proto.Marshal(resp)
			rw.Header().Set("Content-Type", "application/x-protobuf")
			rw.Write(out)
		})}).Serve(lnHTTP)
		secOTLPOnce.r = r
	})
	if secOTLPOnce.err != nil {
		t.Fatal(secOTLPOnce.err)
	}
	entry := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %q, namespace: istio-system}
spec:
  address: %q
  labels: {app: otel-collector}
`, name, addr)
	w.applied(entry)
	t.Cleanup(func() { w.remove(entry) })
	return secOTLPOnce.r
}

// secLogs is an OTLP gRPC logs receiver keeping every record with its resource's attributes.
type secLogs struct {
	logcollpb.UnimplementedLogsServiceServer
	mu   sync.Mutex
	recs []*logspb.LogRecord
}

func (c *secLogs) Export(_ context.Context, req *logcollpb.ExportLogsServiceRequest) (*logcollpb.ExportLogsServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			c.recs = append(c.recs, sl.GetLogRecords()...)
		}
	}
	return &logcollpb.ExportLogsServiceResponse{}, nil
}

// find returns the records whose body holds s.
func (c *secLogs) find(s string) []*logspb.LogRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*logspb.LogRecord
	for _, r := range c.recs {
		if strings.Contains(r.GetBody().GetStringValue(), s) {
			out = append(out, r)
		}
	}
	return out
}

// secCheckOTelLogs checks that requests through the waypoint reach the collector as OTLP log
// records, whose body is Istio's default access log line.
func secCheckOTelLogs(t *testing.T, w *world, b *base) {
	col := secOTLPReceiver(t, w, "otel-collector-als-{{NS}}").logs
	// The collector's endpoint arrives with EDS: the first records may be dropped before it does.
	w.eventually(30*time.Second, "a log record at the collector", func() error {
		expect(t, w, b, "GET", "/otel-log/warm", nil, 200, "")
		if len(col.find("GET /otel-log/warm HTTP/1.1")) == 0 {
			return fmt.Errorf("no record yet")
		}
		return nil
	})
	expect(t, w, b, "GET", "/otel-log/ok", nil, 200, "")
	expect(t, w, b, "GET", "/otel-log/missing", http.Header{"X-Echo-Status": {"404"}}, 404, "")
	w.eventually(10*time.Second, "the records of the requests", func() error {
		for _, want := range []string{`"GET /otel-log/ok HTTP/1.1" 200 `, `"GET /otel-log/missing HTTP/1.1" 404 `} {
			if n := len(col.find(want)); n != 1 {
				return fmt.Errorf("%d records with %q", n, want)
			}
		}
		return nil
	})
	if r := col.find("/otel-log/ok")[0]; r.GetTimeUnixNano() == 0 {
		t.Errorf("record without a time: %v", r)
	}
}

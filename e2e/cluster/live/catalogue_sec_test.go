package live

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
			checks:    "(once built) requests under `/ext/` are checked by the HTTP authorization service",
			yaml: secExtAuthzService + `---
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
			waitsOn: "#13 (ext_authz)",
			nack:    `unsupported HTTP filter "envoy.filters.http.ext_authz"`,
		},
		compatCase{
			name:      "authz-custom-grpc",
			resources: "AuthorizationPolicy CUSTOM, provider `ext-authz-grpc` (Service ext-authz.istio-system:9000), on paths `/ext/*`",
			checks:    "(once built) requests under `/ext/` are checked by the gRPC authorization service",
			yaml: secExtAuthzService + `---
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
			waitsOn: "#13 (ext_authz)",
			nack:    `unsupported HTTP filter "envoy.filters.http.ext_authz"`,
		},
		compatCase{
			name: "authz-jwt",
			resources: "RequestAuthentication, targetRefs Service reviews, issuer with an inline jwks; AuthorizationPolicy ALLOW when " +
				"`request.auth.claims[groups]` is `group1`",
			checks:  "(once built) a token with the claim passes, one without it or none is refused",
			yaml:    secJWT(`jwks: '` + secJWKS + `'`),
			waitsOn: "#13 (JWT)",
			nack:    `unsupported HTTP filter "envoy.filters.http.jwt_authn"`,
		},
		compatCase{
			name:      "authz-jwt-jwksuri",
			resources: "RequestAuthentication, targetRefs Service reviews, issuer with a jwksUri (istiod fetches it); the same AuthorizationPolicy",
			checks:    "(once built) as authz-jwt",
			yaml:      secJWT(`jwksUri: "http://{{NET}}.99:8080/jwks.json"`),
			waitsOn:   "#13 (JWT)",
			nack:      `unsupported HTTP filter "envoy.filters.http.jwt_authn"`,
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
	)
}

// secExtAuthzService is the Service the ext-authz providers of the mesh config name: istiod
// renders a CUSTOM policy only when it exists (else it denies what the policy names). Every
// case applies it alike and none deletes it, so that cases may share it.
const secExtAuthzService = `
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: istio-system}
spec:
  ports:
  - {name: http, port: 8000}
  - {name: grpc, port: 9000}
`

// secJWKS is Istio's sample JWKS (security/tools/jwt/samples).
const secJWKS = `{"keys":[{"e":"AQAB","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","kty":"RSA","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}`

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

package live

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// versionServices are per-version Services of the reviews workloads, the backendRefs of the
// Gateway API route cases (a GAMMA route splits by Service, not by subset).
const versionServices = `
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: "{{NS}}"}
spec:
  selector: {app: reviews, version: v1}
  ports:
  - {name: http, port: 9080}
  - {name: grpc, port: 9090}
  - {name: tcp, port: 9300}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: "{{NS}}"}
spec:
  selector: {app: reviews, version: v2}
  ports:
  - {name: http, port: 9080}
  - {name: grpc, port: 9090}
  - {name: tcp, port: 9300}
`

// noRedirect sends a request as productpage without following a redirect.
func noRedirect(t *testing.T, w *world, method, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	c := w.source("productpage").HTTP()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func init() {
	catalogue = append(catalogue,
		compatCase{
			name: "gw-httproute-match",
			resources: "Services reviews-v1/reviews-v2; HTTPRoute on Service reviews port 9080: PathPrefix `/v2`, Exact `/exact`, RegularExpression `/re/[0-9]+`, " +
				"header `x-version: v2`, header regex `^admin-.*`, query `version=v2` to reviews-v2; PathPrefix `/v1` to reviews-v1; Exact `/split` weighted 1:3; no catch-all rule",
			checks: "each match reaches v2, `/v1` v1 (a longer path prefix outranks a header match); near misses are 404 and reach no workload; " +
				"200 requests to `/split` land 50±30 on v1 and 150±30 on v2",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - path: {type: Exact, value: /exact}
    - path: {type: RegularExpression, value: "/re/[0-9]+"}
    - headers: [{name: x-version, value: v2}]
    - headers: [{type: RegularExpression, name: x-user, value: "^admin-.*"}]
    - queryParams: [{name: version, value: v2}]
    backendRefs:
    - {name: reviews-v2, port: 9080}
  - matches:
    - path: {type: Exact, value: /split}
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 1}
    - {name: reviews-v2, port: 9080, weight: 3}
  - matches:
    - path: {type: PathPrefix, value: /v1}
    backendRefs:
    - {name: reviews-v1, port: 9080}
`,
			// Without a rule that matches everything: istiod ranks a RegularExpression path
			// after every prefix match, the catch-all's `/` included, so that Envoy would never
			// reach it behind one.
			check: func(t *testing.T, w *world, b *base) {
				for _, c := range []struct {
					path   string
					header http.Header
					status int
					pod    string
				}{
					{"/v2", nil, 200, "reviews-v2"},
					{"/v2/deeper", nil, 200, "reviews-v2"},
					{"/v2x", nil, 404, ""}, // a path prefix matches whole segments
					{"/exact", nil, 200, "reviews-v2"},
					{"/exact/no", nil, 404, ""},
					{"/re/42", nil, 200, "reviews-v2"},
					{"/re/42?q=1", nil, 200, "reviews-v2"}, // the regex is on the path only
					{"/re/4x", nil, 404, ""},
					{"/x", http.Header{"X-Version": {"v2"}}, 200, "reviews-v2"},
					{"/x", http.Header{"X-Version": {"v1"}}, 404, ""},
					{"/v1/x", http.Header{"X-Version": {"v2"}}, 200, "reviews-v1"},
					{"/x", http.Header{"X-User": {"admin-jo"}}, 200, "reviews-v2"},
					{"/x", http.Header{"X-User": {"jo-admin-"}}, 404, ""},
					{"/q?version=v2", nil, 200, "reviews-v2"},
					{"/q?version=v3", nil, 404, ""},
					{"/v1", nil, 200, "reviews-v1"},
				} {
					hits := b.v1.hits.Load() + b.v2.hits.Load()
					expect(t, w, b, "GET", c.path, c.header, c.status, c.pod)
					if c.pod == "" && b.v1.hits.Load()+b.v2.hits.Load() != hits {
						t.Errorf("%s %v: %d reached a workload", c.path, c.header, c.status)
					}
				}
				got := map[string]int{}
				for i := 0; i < 200; i++ {
					got[expect(t, w, b, "GET", "/split", nil, 200, "").Pod]++
				}
				if got["reviews-v1"] < 20 || got["reviews-v1"] > 80 || got["reviews-v2"] < 120 {
					t.Errorf("1:3 split of 200: %v", got)
				}
			},
		},
		compatCase{
			name: "gw-httproute-filters",
			resources: "HTTPRoute on Service reviews: RequestHeaderModifier (set/add/remove), ResponseHeaderModifier (set/add/remove), " +
				"a backendRef's own RequestHeaderModifier; URLRewrite ReplacePrefixMatch `/old`→`/new` with hostname, `/strip`→`/`, ReplaceFullPath; " +
				"RequestRedirect (hostname, path, 301) and (scheme https, port 8443, 302); CORS (exact and wildcard origins, methods, headers, maxAge)",
			checks: "the workload sees the headers set and added, not the removed one, the rewritten path and host; the client sees the response headers; " +
				"redirects answer their `location` (the Service port when the filter names none, the query kept) and reach no workload; " +
				"preflights from allowed origins get the CORS headers and reach no workload, others get none",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: reviews.example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - matches:
    - path: {type: PathPrefix, value: /strip}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - matches:
    - path: {type: PathPrefix, value: /full}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplaceFullPath, replaceFullPath: /replaced}
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - matches:
    - path: {type: Exact, value: /moved}
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: elsewhere.example
        path: {type: ReplaceFullPath, replaceFullPath: /here}
        statusCode: 301
  - matches:
    - path: {type: PathPrefix, value: /secure}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 8443, statusCode: 302}
  - matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://shop.example", "https://*.shop.example"]
        allowMethods: [GET, POST]
        allowHeaders: [x-token]
        maxAge: 3600
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: route}]
        add: [{name: x-added, value: "yes"}]
        remove: [x-secret]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-served-by, value: waypoint}]
        add: [{name: x-resp-added, value: "yes"}]
        remove: [x-pod]
    backendRefs:
    - name: reviews-v2
      port: 9080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set: [{name: x-backend, value: v2}]
`,
			check: func(t *testing.T, w *world, b *base) {
				r := expect(t, w, b, "GET", "/old/x?q=1", nil, 200, "reviews-v1")
				if r.Path != "/new/x?q=1" || r.Host != "reviews.example" {
					t.Errorf("/old/x?q=1 rewritten to %q host %q, want /new/x?q=1 host reviews.example", r.Path, r.Host)
				}
				r = expect(t, w, b, "GET", "/old", nil, 200, "reviews-v1")
				if r.Path != "/new" {
					t.Errorf("/old rewritten to %q, want /new", r.Path)
				}
				for path, want := range map[string]string{"/strip/x?q=1": "/x?q=1", "/strip": "/", "/strip/": "/"} {
					if r := expect(t, w, b, "GET", path, nil, 200, "reviews-v1"); r.Path != want {
						t.Errorf("%s rewritten to %q, want %s", path, r.Path, want)
					}
				}
				r = expect(t, w, b, "GET", "/full/a/b", nil, 200, "reviews-v1")
				if r.Path != "/replaced" {
					t.Errorf("/full/a/b rewritten to %q, want /replaced", r.Path)
				}

				hits := b.v1.hits.Load() + b.v2.hits.Load()
				// istiod writes the Service port as the redirect's port when the filter names none.
				if resp := noRedirect(t, w, "GET", b.url("/moved?q=1")); resp.StatusCode != 301 || resp.Header.Get("location") != "http://elsewhere.example:9080/here?q=1" {
					t.Errorf("/moved: %d location %q, want 301 http://elsewhere.example:9080/here?q=1", resp.StatusCode, resp.Header.Get("location"))
				}
				want := "https://" + b.vip + ":8443/secure/x?q=1"
				if resp := noRedirect(t, w, "GET", b.url("/secure/x?q=1")); resp.StatusCode != 302 || resp.Header.Get("location") != want {
					t.Errorf("/secure/x: %d location %q, want 302 %s", resp.StatusCode, resp.Header.Get("location"), want)
				}
				if n := b.v1.hits.Load() + b.v2.hits.Load(); n != hits {
					t.Errorf("a redirect reached a workload")
				}

				preflight := func(origin string) *http.Response {
					req, _ := http.NewRequest("OPTIONS", b.url("/api/x"), nil)
					req.Header.Set("Origin", origin)
					req.Header.Set("Access-Control-Request-Method", "POST")
					resp, err := w.source("productpage").HTTP().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					return resp
				}
				hits = b.v1.hits.Load() + b.v2.hits.Load()
				for _, origin := range []string{"https://shop.example", "https://eu.shop.example"} {
					resp := preflight(origin)
					if resp.StatusCode != 200 || resp.Header.Get("access-control-allow-origin") != origin ||
						!strings.Contains(resp.Header.Get("access-control-allow-methods"), "POST") || resp.Header.Get("access-control-max-age") != "3600" {
						t.Errorf("preflight from %s: %d %v", origin, resp.StatusCode, resp.Header)
					}
				}
				if b.v1.hits.Load()+b.v2.hits.Load() != hits {
					t.Errorf("an allowed preflight reached a workload")
				}
				for _, origin := range []string{"https://evil.example", "https://shop.example.evil", "http://shop.example"} {
					if resp := preflight(origin); resp.Header.Get("access-control-allow-origin") != "" {
						t.Errorf("preflight from %s was allowed: %v", origin, resp.Header)
					}
				}

				req, _ := http.NewRequest("GET", b.url("/h"), nil)
				req.Header.Set("x-secret", "s")
				req.Header.Set("x-set", "client")
				resp, err := w.source("productpage").HTTP().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				decodeJSON(t, resp, &r)
				if r.Pod != "reviews-v2" {
					t.Errorf("/h answered by %q, want reviews-v2", r.Pod)
				}
				if resp.Header.Get("x-served-by") != "waypoint" || resp.Header.Get("x-resp-added") != "yes" || resp.Header.Get("x-pod") != "" {
					t.Errorf("response headers %v", resp.Header)
				}
				h := r.Headers
				if h.Get("x-set") != "route" || h.Get("x-added") != "yes" || h.Get("x-secret") != "" || h.Get("x-backend") != "v2" {
					t.Errorf("the workload saw %v", h)
				}
			},
		},
		compatCase{
			name:      "gw-httproute-timeout",
			resources: "HTTPRoute on Service reviews: `timeouts.request` 500ms on `/slow`, `backendRequest` 500ms (request 5s) on `/backend`, none elsewhere",
			checks:    "a workload answering after 3 s gives the client 504 before 3 s on both; under `/other` a 1 s delay is waited for (200 after at least 1 s)",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /slow}
    timeouts: {request: 500ms}
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - matches:
    - path: {type: PathPrefix, value: /backend}
    timeouts: {request: 5s, backendRequest: 500ms}
    backendRefs:
    - {name: reviews-v1, port: 9080}
  - backendRefs:
    - {name: reviews-v1, port: 9080}
`,
			check: func(t *testing.T, w *world, b *base) {
				start := time.Now()
				code, _, err := w.call("productpage", "GET", b.url("/slow"), http.Header{"X-Echo-Delay": {"3s"}})
				if err != nil || code != 504 {
					t.Errorf("/slow: %d %v, want 504", code, err)
				}
				if d := time.Since(start); d >= 3*time.Second {
					t.Errorf("/slow answered after %v: the timeout did not cut the wait", d)
				}
				// backendRequest without retries is the route's timeout (istiod).
				start = time.Now()
				code, _, err = w.call("productpage", "GET", b.url("/backend"), http.Header{"X-Echo-Delay": {"3s"}})
				if err != nil || code != 504 {
					t.Errorf("/backend: %d %v, want 504", code, err)
				}
				if d := time.Since(start); d >= 3*time.Second {
					t.Errorf("/backend answered after %v: the timeout did not cut the wait", d)
				}
				start = time.Now()
				expect(t, w, b, "GET", "/other", http.Header{"X-Echo-Delay": {"1s"}}, 200, "reviews-v1")
				if d := time.Since(start); d < time.Second {
					t.Errorf("/other answered after %v, want at least 1s", d)
				}
			},
		},
		compatCase{
			name:      "gw-httproute-mirror",
			resources: "HTTPRoute on Service reviews: to reviews-v1 with a RequestMirror filter to reviews-v2",
			checks:    "as vs-mirror: v1 answers each of 10 requests, v2 gets a copy of each, body and Host included",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: reviews-v2, port: 9080}
    backendRefs:
    - {name: reviews-v1, port: 9080}
`,
			check: mirrorCheck,
		},
		compatCase{
			name: "gw-grpcroute",
			resources: "GRPCRoute on Service reviews port 9090: method `echo.Echo/A` to reviews-v1, method `echo.Echo/B` or header `x-version: v2` to reviews-v2, " +
				"service `echo.Other` to reviews-v2, the rest to reviews-v1",
			checks: "each call is answered by the workload its match names (gRPC echo), 5 times each; " +
				"istio_request_messages_total and istio_response_messages_total count the 30 calls' messages (istiod's grpc_stats filter emits them)",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9090}
  rules:
  - matches:
    - method: {service: echo.Echo, method: A}
    backendRefs:
    - {name: reviews-v1, port: 9090}
  - matches:
    - method: {service: echo.Echo, method: B}
    - headers: [{name: x-version, value: v2}]
    - method: {service: echo.Other}
    backendRefs:
    - {name: reviews-v2, port: 9090}
  - backendRefs:
    - {name: reviews-v1, port: 9090}
`,
			check: func(t *testing.T, w *world, b *base) {
				for i := 0; i < 5; i++ {
					for _, c := range []struct {
						method string
						md     []string
						pod    string
					}{
						{"/echo.Echo/A", nil, "reviews-v1"},
						{"/echo.Echo/B", nil, "reviews-v2"},
						{"/echo.Echo/C", nil, "reviews-v1"},
						{"/echo.Echo/C", []string{"x-version", "v2"}, "reviews-v2"},
						{"/echo.Echo/A", []string{"x-version", "v2"}, "reviews-v1"}, // the first rule wins
						{"/echo.Other/Anything", nil, "reviews-v2"},
					} {
						if pod, err := w.grpcCall("productpage", b.vip+":9090", c.method, c.md...); err != nil || pod != c.pod {
							t.Errorf("%s %v: %q %v, want %s", c.method, c.md, pod, err, c.pod)
						}
					}
				}
				ns := fmt.Sprintf(`destination_workload_namespace="%s"`, w.ns)
				w.eventually(10*time.Second, "the gRPC message counts", func() error {
					req, resp := w.metric("istio_request_messages_total", ns), w.metric("istio_response_messages_total", ns)
					if req != 30 || resp != 30 {
						return fmt.Errorf("%v request and %v response messages, want 30 and 30", req, resp)
					}
					return nil
				})
			},
		},
		compatCase{
			name:      "gw-tcproute",
			resources: "TCPRoute on Service reviews port 9300 to reviews-v2",
			checks:    "10 TCP connections to the VIP's 9300 all reach reviews-v2, none reviews-v1",
			yaml: versionServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9300}
  rules:
  - backendRefs:
    - {name: reviews-v2, port: 9300}
`,
			check: func(t *testing.T, w *world, b *base) {
				v1 := b.v1.hits.Load()
				for i := 0; i < 10; i++ {
					if pod, err := w.tcpCall("productpage", b.vip+":9300"); err != nil || pod != "reviews-v2" {
						t.Errorf("TCP: %q %v, want reviews-v2", pod, err)
					}
				}
				if n := b.v1.hits.Load() - v1; n != 0 {
					t.Errorf("reviews-v1 got %d connections", n)
				}
			},
		},
		compatCase{
			name: "se-static",
			resources: "ServiceEntry ext.example.internal (MESH_INTERNAL, STATIC, VIP 240.240.0.10, port http 80 → targetPort 8080, workloadSelector app=ext, " +
				"label istio.io/use-waypoint) over WorkloadEntries ext-1/ext-2; ServiceEntry inline.example.internal (VIP 240.240.0.11, port http 80, " +
				"an inline endpoint with ports http: 8082); a VirtualService on ext.example.internal adding a header; an AuthorizationPolicy on the ServiceEntry denying `/admin`",
			checks: "40 requests to 240.240.0.10:80 reach both ext workloads on 8080 with the VirtualService's header; `/admin` is 403 and reaches none; " +
				"240.240.0.11:80 reaches the inline endpoint on 8082 in plain TCP (no ambient workload: no HBONE), as Envoy does",
			yaml: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-1, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.201"
  serviceAccount: ext
  labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-2, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.202"
  serviceAccount: ext
  labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [ext.example.internal]
  addresses: [240.240.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  workloadSelector:
    labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: inline
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [inline.example.internal]
  addresses: [240.240.0.11]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  endpoints:
  - address: "{{NET}}.203"
    serviceAccount: inline
    ports: {http: 8082}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: "{{NS}}"}
spec:
  hosts: [ext.example.internal]
  http:
  - headers:
      request:
        set: {x-via: ext-vs}
    route:
    - destination: {host: ext.example.internal}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-admin, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {group: networking.istio.io, kind: ServiceEntry, name: ext}
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin*"]}
`,
			check: func(t *testing.T, w *world, b *base) {
				e1 := standIn(w, "ext-1", "ext", w.net+".201", 8080)
				e2 := standIn(w, "ext-2", "ext", w.net+".202", 8080)
				// The inline endpoint is no ambient workload (istiod gives the waypoint its socket
				// address, no HBONE): a plain echo, with no ztunnel in front.
				in := &pod{name: "inline-1", ip: w.net + ".203"}
				w.echo(in, 8082)
				var got map[string]int
				w.eventually(20*time.Second, "the ServiceEntry's VIP served", func() error {
					code, _, err := w.call("productpage", "GET", "http://240.240.0.10/", nil)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				})
				got = spread(t, w, "http://240.240.0.10/x", nil, 40)
				if got["ext-1"] == 0 || got["ext-2"] == 0 || got["ext-1"]+got["ext-2"] != 40 {
					t.Errorf("40 requests to the ServiceEntry: %v", got)
				}
				code, r, err := w.call("productpage", "GET", "http://240.240.0.10/y", nil)
				if err != nil || code != 200 || r.Headers.Get("x-via") != "ext-vs" || r.Path != "/y" {
					t.Errorf("GET /y: %d %v, the workload saw %q %v", code, err, r.Path, r.Headers)
				}
				hits := e1.hits.Load() + e2.hits.Load()
				if code, _, err := w.call("productpage", "GET", "http://240.240.0.10/admin/x", nil); err != nil || code != 403 {
					t.Errorf("GET /admin/x: %d %v, want 403", code, err)
				}
				if e1.hits.Load()+e2.hits.Load() != hits {
					t.Errorf("a denied request reached a workload")
				}
				code, r, err = w.call("productpage", "GET", "http://240.240.0.11/z", nil)
				if err != nil || code != 200 || r.Pod != "inline-1" {
					t.Errorf("the inline endpoint: %d %q %v", code, r.Pod, err)
				}
				if in.hits.Load() == 0 {
					t.Errorf("the inline endpoint's 8082 got nothing")
				}
			},
		},
		compatCase{
			name: "se-dns",
			resources: "ServiceEntry httpbin.example.com (MESH_EXTERNAL, resolution DNS, VIP 240.240.0.20, port http 80) with label istio.io/use-waypoint; " +
				"the waypoint's name server (--dns-resolver, on loopback) answers A records with a 1 s TTL",
			checks: "istiod's STRICT_DNS cluster: requests to the VIP reach the name's address in plain TCP; when the answer changes, " +
				"traffic follows within the TTL; with two addresses, 40 requests reach both",
			yaml: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [httpbin.example.com]
  addresses: [240.240.0.20]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
`,
			setup: func(t *testing.T, w *world) {
				dnsSetup(w)
			},
			check: checkDNS,
		},
		compatCase{
			name: "se-workloadentry",
			resources: "Service ratings (http 9080, label istio.io/use-waypoint) selecting WorkloadEntries ratings-1 (the Service's target port), " +
				"ratings-2 (`ports: {http: 8080}`, `weight: 3`) and ratings-3 (`network: remote`)",
			checks: "250 requests reach ratings-1 on 9080, ratings-2 on 8080 and ratings-3 about 1:3:1 (50±30, 150±40, 50±30): istiod gives the waypoint, " +
				"which names no network, ratings-3 as an HBONE endpoint like the others",
			yaml: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.201"
  serviceAccount: ratings
  labels: {app: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-2, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.202"
  serviceAccount: ratings
  labels: {app: ratings}
  ports: {http: 8080}
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-3, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.203"
  serviceAccount: ratings
  labels: {app: ratings}
  network: remote
---
apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 9080}
`,
			check: func(t *testing.T, w *world, b *base) {
				r1 := standIn(w, "ratings-1", "ratings", w.net+".201", 9080)
				r2 := standIn(w, "ratings-2", "ratings", w.net+".202", 8080)
				r3 := standIn(w, "ratings-3", "ratings", w.net+".203", 9080)
				url := "http://" + w.serviceVIP("ratings") + ":9080/"
				w.eventually(20*time.Second, "ratings served", func() error {
					code, _, err := w.call("productpage", "GET", url, nil)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				})
				got := spread(t, w, url, nil, 250)
				if got["ratings-1"] < 20 || got["ratings-1"] > 80 || got["ratings-2"] < 110 || got["ratings-2"] > 190 || got["ratings-3"] < 20 || got["ratings-3"] > 80 {
					t.Errorf("250 requests: %v, want about 50:150:50", got)
				}
				if r1.hits.Load() == 0 || r2.hits.Load() == 0 || r3.hits.Load() == 0 {
					t.Errorf("hits: ratings-1 %d, ratings-2 %d (on 8080), ratings-3 %d", r1.hits.Load(), r2.hits.Load(), r3.hits.Load())
				}
			},
		},
		compatCase{
			name: "gw-waypoint-for",
			resources: "the Gateway relabelled `istio.io/waypoint-for: all`, then `workload`; WorkloadEntry ratings-1 labelled `istio.io/use-waypoint: waypoint` " +
				"(HTTP 9080, TCP 9300), details-1 not; an AuthorizationPolicy on the Gateway denying `/admin`",
			checks: "with `all`: pod-addressed HTTP to ratings-1 goes through direct-http (200, `/admin` 403 reaching no workload), TCP through direct-tcp " +
				"refused by the policy (istiod drops a DENY rule's HTTP-only fields for TCP), the reviews VIP still served, details-1's address refused (no chain); " +
				"with `workload` and the policy removed: the pod served over HTTP (`/admin` too) and TCP, the reviews VIP refused",
			yaml: waypointFor("all") + `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ratings-1
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.201"
  serviceAccount: ratings
  labels: {app: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-1
  namespace: "{{NS}}"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.202"
  serviceAccount: details
  labels: {app: details}
---` + noAdmin,
			check: func(t *testing.T, w *world, b *base) {
				ratings := standIn(w, "ratings-1", "ratings", w.net+".201", 9080)
				w.tcpEcho(ratings, 9300)
				details := standIn(w, "details-1", "details", w.net+".202", 9080)
				pod := "http://" + ratings.ip + ":9080"
				podHTTP := func(admin int) {
					t.Helper()
					code, r, err := w.call("productpage", "GET", pod+"/x", nil)
					if err != nil || code != 200 || r.Pod != "ratings-1" || r.Path != "/x" {
						t.Errorf("GET %s/x: %d from %q %v", pod, code, r.Pod, err)
					}
					hits := ratings.hits.Load()
					if code, _, err := w.call("productpage", "GET", pod+"/admin/x", nil); err != nil || code != admin {
						t.Errorf("GET %s/admin/x: %d %v, want %d", pod, code, err, admin)
					}
					if admin == 403 && ratings.hits.Load() != hits {
						t.Errorf("a denied request reached ratings-1")
					}
				}
				w.eventually(20*time.Second, "pod-addressed traffic through the waypoint", func() error {
					if code, _, err := w.call("productpage", "GET", pod+"/x", nil); err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				})
				podHTTP(403)
				// A DENY rule's HTTP-only fields are dropped for TCP (istiod): the
				// direct-tcp chain's network RBAC refuses every connection.
				hits := ratings.hits.Load()
				if name, err := w.tcpCall("productpage", ratings.ip+":9300"); err == nil {
					t.Errorf("TCP to %s:9300 under the DENY policy: answered by %q", ratings.ip, name)
				}
				if ratings.hits.Load() != hits {
					t.Errorf("a denied TCP connection reached ratings-1")
				}
				expect(t, w, b, "GET", "/", nil, 200, "")
				if resp, err := w.source("productpage").FreshHTTP().Get("http://" + details.ip + ":9080/"); err == nil {
					resp.Body.Close()
					t.Errorf("details-1, not bound to the waypoint, answered %d through it", resp.StatusCode)
				}
				if details.hits.Load() != 0 {
					t.Errorf("details-1 was reached")
				}

				w.applied(waypointFor("workload"))
				w.remove(noAdmin)
				w.eventually(20*time.Second, "the policy's removal in force", func() error {
					if code, _, err := w.call("productpage", "GET", pod+"/admin/y", nil); err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				})
				w.synced()
				podHTTP(200)
				if name, err := w.tcpCall("productpage", ratings.ip+":9300"); err != nil || name != "ratings-1" {
					t.Errorf("TCP to %s:9300: %q %v", ratings.ip, name, err)
				}
				if resp, err := w.source("productpage").FreshHTTP().Get(b.url("/")); err == nil {
					resp.Body.Close()
					t.Errorf("the reviews VIP answered %d through a waypoint for workloads only", resp.StatusCode)
				}
			},
		},
		compatCase{
			name: "gw-allowed-routes",
			resources: "namespace NS-other (ambient) with Service ratings (http 9080) labelled `istio.io/use-waypoint: waypoint` and " +
				"`istio.io/use-waypoint-namespace: NS` over a WorkloadEntry; the Gateway's listener allowedRoutes: Same (default), then All, then a Selector " +
				"matching NS (labelled for it) and not NS-other",
			checks: "the other namespace's VIP is refused by the waypoint while the Gateway admits only its own namespace, served (by the other namespace's workload, " +
				"under its own identity) once it admits All, refused again under the Selector; the reviews VIP served throughout",
			yaml: `
apiVersion: v1
kind: Namespace
metadata:
  name: "{{NS}}-other"
  labels: {istio.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ratings, namespace: "{{NS}}-other"}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ratings-1
  namespace: "{{NS}}-other"
  annotations: {ambient.istio.io/redirection: enabled}
spec:
  address: "{{NET}}.201"
  serviceAccount: ratings
  labels: {app: ratings}
---
apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: "{{NS}}-other"
  labels: {istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: "{{NS}}"}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 9080}
`,
			check: func(t *testing.T, w *world, b *base) {
				other := w.ns + "-other"
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					env.cluster.Client.CoreV1().Namespaces().Delete(ctx, other, metav1.DeleteOptions{})
				})
				ratings := standInOf(w, "ratings-1", other, "ratings", w.net+".201", 9080)
				svc, err := env.cluster.Client.CoreV1().Services(other).Get(context.Background(), "ratings", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				url := "http://" + svc.Spec.ClusterIP + ":9080/"
				refused := func(when string) {
					t.Helper()
					if resp, err := w.source("productpage").FreshHTTP().Get(url); err == nil {
						resp.Body.Close()
						t.Errorf("%s: the other namespace's VIP answered %d through the waypoint", when, resp.StatusCode)
					}
					expect(t, w, b, "GET", "/", nil, 200, "")
				}
				refused("allowedRoutes Same")
				if ratings.hits.Load() != 0 {
					t.Errorf("ratings-1 was reached")
				}

				w.applied(gatewayAllowing(`{from: All}`))
				w.eventually(20*time.Second, "the other namespace's Service served", func() error {
					code, r, err := w.call("productpage", "GET", url, nil)
					if err != nil || code != 200 || r.Pod != "ratings-1" {
						return fmt.Errorf("%d %q %v", code, r.Pod, err)
					}
					return nil
				})
				for i := 0; i < 5; i++ {
					if code, r, err := w.call("productpage", "GET", url+"x", nil); err != nil || code != 200 || r.Pod != "ratings-1" || r.Path != "/x" {
						t.Errorf("allowedRoutes All: %d %q %q %v", code, r.Pod, r.Path, err)
					}
				}
				expect(t, w, b, "GET", "/", nil, 200, "")

				// A Selector admits the Gateway's own namespace only if it matches it too.
				w.applied(`
apiVersion: v1
kind: Namespace
metadata:
  name: "{{NS}}"
  labels: {istio.io/dataplane-mode: ambient, team: reviews}
---` + gatewayAllowing(`{from: Selector, selector: {matchLabels: {team: reviews}}}`))
				w.eventually(20*time.Second, "the other namespace's Service no longer served", func() error {
					if resp, err := w.source("productpage").FreshHTTP().Get(url); err == nil {
						resp.Body.Close()
						return fmt.Errorf("answered %d", resp.StatusCode)
					}
					return nil
				})
				refused("allowedRoutes Selector")
			},
		},
		compatCase{
			name: "se-httproute",
			resources: "ServiceEntry ext-route.example.internal (VIP 240.240.1.10, as in se-static, over WorkloadEntries ext-1/ext-2) with an HTTPRoute whose parentRef is the ServiceEntry: " +
				"header `x-version: v2` to Service reviews-v2, the rest to the ServiceEntry itself (backendRef kind Hostname) with a RequestHeaderModifier",
			checks: "requests to the ServiceEntry's VIP reach ext-1/ext-2 with the route's header; with `x-version: v2`, reviews-v2",
			yaml: versionServices + `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-1, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.201"
  serviceAccount: ext
  labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-2, namespace: "{{NS}}", annotations: {ambient.istio.io/redirection: enabled}}
spec:
  address: "{{NET}}.202"
  serviceAccount: ext
  labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [ext-route.example.internal]
  addresses: [240.240.1.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  workloadSelector:
    labels: {app: ext}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ext, namespace: "{{NS}}"}
spec:
  parentRefs:
  - {group: networking.istio.io, kind: ServiceEntry, name: ext, port: 80}
  rules:
  - matches:
    - headers: [{name: x-version, value: v2}]
    backendRefs:
    - {name: reviews-v2, port: 9080}
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-via, value: ext-route}]
    backendRefs:
    - {group: networking.istio.io, kind: Hostname, name: ext-route.example.internal, port: 80}
`,
			check: func(t *testing.T, w *world, b *base) {
				standIn(w, "ext-1", "ext", w.net+".201", 8080)
				standIn(w, "ext-2", "ext", w.net+".202", 8080)
				w.eventually(20*time.Second, "the ServiceEntry's VIP served", func() error {
					code, _, err := w.call("productpage", "GET", "http://240.240.1.10/", nil)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				})
				got := map[string]int{}
				for i := 0; i < 20; i++ {
					code, r, err := w.call("productpage", "GET", "http://240.240.1.10/x", nil)
					if err != nil || code != 200 || r.Headers.Get("x-via") != "ext-route" {
						t.Fatalf("GET /x: %d %v, the workload saw %v", code, err, r.Headers)
					}
					got[r.Pod]++
				}
				if got["ext-1"] == 0 || got["ext-2"] == 0 {
					t.Errorf("20 requests to the ServiceEntry: %v", got)
				}
				for i := 0; i < 5; i++ {
					code, r, err := w.call("productpage", "GET", "http://240.240.1.10/x", http.Header{"X-Version": {"v2"}})
					if err != nil || code != 200 || r.Pod != "reviews-v2" || r.Headers.Get("x-via") != "" {
						t.Errorf("GET /x with x-version v2: %d from %q %v, saw %v", code, r.Pod, err, r.Headers)
					}
				}
			},
		},
	)
}

// noAdmin is gw-waypoint-for's AuthorizationPolicy on the Gateway.
const noAdmin = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin*"]}
`

// waypointFor is the world's Gateway with label istio.io/waypoint-for: traffic.
func waypointFor(traffic string) string {
	return `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: "{{NS}}"
  labels: {istio.io/waypoint-for: ` + traffic + `}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
`
}

// gatewayAllowing is the world's Gateway whose HBONE listener admits Services of the namespaces
// namespaces (a RouteNamespaces in YAML) to use it.
func gatewayAllowing(namespaces string) string {
	return `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: "{{NS}}"
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
    allowedRoutes: {namespaces: ` + namespaces + `}
`
}

// standInOf is standIn for a pod of namespace ns (its identity ns/sa).
func standInOf(w *world, name, ns, sa, ip string, ports ...int) *pod {
	w.t.Helper()
	dir := filepath.Join(env.meshCA, ns, sa)
	if _, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil {
		if out, err := exec.Command(env.waypoint, "certs", "--out", env.meshCA, ns+"/"+sa).CombinedOutput(); err != nil {
			w.t.Fatalf("waypoint certs %s/%s: %v: %s", ns, sa, err, out)
		}
	}
	p := &pod{name: name, ip: ip, sa: sa}
	w.start("ztunnel-"+name, nil, env.hbone, "serve", "--listen", net.JoinHostPort(ip, "15008"), "--cert-dir", dir)
	for _, port := range ports {
		w.echo(p, port)
	}
	return p
}

// standIn starts, at ip, a pod of this world that no WorkloadEntry of the harness describes
// (the case's own resources do: a WorkloadEntry with fields w.workload does not write, or a
// ServiceEntry's inline endpoint): its ztunnel stand-in with identity ns/sa and HTTP echoes on
// ports. Cases use host numbers from 200 up, which w.workload never reaches.
func standIn(w *world, name, sa, ip string, ports ...int) *pod {
	w.t.Helper()
	p := &pod{name: name, ip: ip, sa: sa}
	w.start("ztunnel-"+name, nil, env.hbone, "serve", "--listen", net.JoinHostPort(ip, "15008"), "--cert-dir", w.identity(sa))
	for _, port := range ports {
		w.echo(p, port)
	}
	return p
}

// spread calls url n times as productpage and counts the pods that answered 200; any other
// answer fails the test.
func spread(t *testing.T, w *world, url string, header http.Header, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		code, r, err := w.call("productpage", "GET", url, header)
		if err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", url, code, err)
		}
		got[r.Pod]++
	}
	return got
}

// dnsSetup starts the world's name server (before the ServiceEntry, so that the waypoint's
// first resolution finds it), httpbin.example.com answering NET.61.
func dnsSetup(w *world) {
	w.dns().set("httpbin.example.com", time.Second, w.net+".61")
}

// checkDNS serves the two addresses httpbin.example.com may resolve to with plain echo
// servers on port 80 (an external service: no ztunnel) and moves the name between them.
func checkDNS(t *testing.T, w *world, b *base) {
	h1, h2 := &pod{name: "httpbin-1", ip: w.net + ".61"}, &pod{name: "httpbin-2", ip: w.net + ".62"}
	w.echo(h1, 80)
	w.echo(h2, 80)
	reaches := func(what, pod string) {
		w.eventually(20*time.Second, what, func() error {
			code, r, err := w.call("productpage", "GET", "http://240.240.0.20/dns", nil)
			if err != nil || code != 200 || r.Pod != pod {
				return fmt.Errorf("%d %q %v", code, r.Pod, err)
			}
			return nil
		})
	}
	reaches("the ServiceEntry's VIP reaches the name's address", "httpbin-1")
	if got := h1.requests("/dns"); len(got) == 0 {
		t.Errorf("httpbin-1 saw no request")
	}
	w.dnsSrv.set("httpbin.example.com", time.Second, h2.ip)
	reaches("traffic follows the name's new address", "httpbin-2")
	w.dnsSrv.set("httpbin.example.com", time.Second, h1.ip, h2.ip)
	w.eventually(20*time.Second, "both addresses are endpoints", func() error {
		got := spread(t, w, "http://240.240.0.20/x", nil, 40)
		if got["httpbin-1"] == 0 || got["httpbin-2"] == 0 || got["httpbin-1"]+got["httpbin-2"] != 40 {
			return fmt.Errorf("40 requests: %v", got)
		}
		return nil
	})
}

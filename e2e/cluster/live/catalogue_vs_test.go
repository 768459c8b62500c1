package live

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// subsets is the DestinationRule most VirtualService cases route with.
const subsets = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: {{NS}}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`

// expect calls method path on reviews' HTTP port as productpage and checks the status and,
// when pod is set, the pod that answered. It returns the reply.
func expect(t *testing.T, w *world, b *base, method, path string, header http.Header, status int, pod string) echoReply {
	t.Helper()
	code, r, err := w.call("productpage", method, b.url(path), header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != status || (pod != "" && r.Pod != pod) {
		t.Fatalf("%s %s: %d from %q, want %d from %q", method, path, code, r.Pod, status, pod)
	}
	return r
}

// mirrorCheck sends 10 requests, every other one a POST with a body, and checks that
// reviews-v1 answers each one and that reviews-v2 gets a copy of each: same method, path,
// body and Host. The Host keeps its host: istiod sets disable_shadow_host_suffix_append
// (its DISABLE_SHADOW_HOST_SUFFIX, true by default); the router's unit tests cover the
// "-shadow" suffix Envoy appends without it.
func mirrorCheck(t *testing.T, w *world, b *base) {
	const n = 10
	body := func(i int) string {
		if i%2 == 0 {
			return ""
		}
		return fmt.Sprintf("copy %d %s", i, strings.Repeat("x", 10_000))
	}
	// The config may come in more than one push (subsets, then the route): wait until the
	// route with its mirror is in force.
	warm := 0
	w.eventually(30*time.Second, "the mirroring route is in force", func() error {
		warm++
		code, r, err := w.call("productpage", "GET", b.url(fmt.Sprintf("/warmup-%d", warm)), nil)
		switch {
		case err != nil:
			return err
		case code != 200 || r.Pod != "reviews-v1":
			return fmt.Errorf("/warmup-%d: %d from %q", warm, code, r.Pod)
		case len(b.v2.requests("/warmup-")) == 0:
			return fmt.Errorf("no copy of a /warmup request on reviews-v2 yet")
		}
		return nil
	})
	for i := 0; i < n; i++ {
		path := fmt.Sprintf("/mirror-%d", i)
		method := "GET"
		if body(i) != "" {
			method = "POST"
		}
		req, err := http.NewRequest(method, b.url(path), strings.NewReader(body(i)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := w.source("productpage").HTTP().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-pod") != "reviews-v1" {
			t.Fatalf("%s %s: %d from %q, want 200 from reviews-v1", method, path, resp.StatusCode, resp.Header.Get("x-pod"))
		}
	}
	host := b.vip + ":9080"
	check := func(p *pod, host string) error {
		got := p.requests("/mirror-")
		if len(got) != n {
			return fmt.Errorf("%s received %d of the %d requests", p.name, len(got), n)
		}
		byPath := map[string]received{}
		for _, r := range got {
			byPath[r.Path] = r
		}
		for i := 0; i < n; i++ {
			r, ok := byPath[fmt.Sprintf("/mirror-%d", i)]
			switch {
			case !ok:
				return fmt.Errorf("%s did not receive /mirror-%d", p.name, i)
			case r.Host != host:
				return fmt.Errorf("%s: /mirror-%d with Host %q, want %q", p.name, i, r.Host, host)
			case string(r.Body) != body(i):
				return fmt.Errorf("%s: /mirror-%d with a body of %d bytes, want %d", p.name, i, len(r.Body), len(body(i)))
			}
		}
		return nil
	}
	if err := check(b.v1, host); err != nil {
		t.Error(err)
	}
	w.eventually(10*time.Second, "reviews-v2 gets a copy of each request", func() error { return check(b.v2, host) })
	if got := w.metric("waypoint_router_mirror_requests_total", `result="ok"`); got < n {
		t.Errorf("waypoint_router_mirror_requests_total{result=\"ok\"} = %v, want at least %d", got, n)
	}
}

func init() {
	catalogue = append(catalogue,
		compatCase{
			name:      "vs-header-match",
			resources: "DestinationRule subsets v1/v2; VirtualService: header `end-user: jason` to v2, the rest to v1",
			checks:    "with the header v2 answers, without it v1, 10 times each",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`,
			check: func(t *testing.T, w *world, b *base) {
				for i := 0; i < 10; i++ {
					expect(t, w, b, "GET", "/", http.Header{"End-User": {"jason"}}, 200, "reviews-v2")
					expect(t, w, b, "GET", "/", nil, 200, "reviews-v1")
				}
			},
		},
		compatCase{
			name:      "vs-uri-rewrite",
			resources: "VirtualService: prefix `/old/` rewritten to `/new/`, exact `/exact` and regex `^/re/[0-9]+$` routed to v2, authority rewritten",
			checks:    "the workload sees `/new/x` and the new authority; exact and regex matches reach v2, near misses v1",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /old/}
    rewrite: {uri: /new/, authority: reviews.example}
    route:
    - destination: {host: reviews, subset: v1}
  - match:
    - uri: {exact: /exact}
    - uri: {regex: "^/re/[0-9]+$"}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`,
			check: func(t *testing.T, w *world, b *base) {
				r := expect(t, w, b, "GET", "/old/x?q=1", nil, 200, "reviews-v1")
				if r.Path != "/new/x?q=1" || r.Host != "reviews.example" {
					t.Errorf("rewritten to %q host %q, want /new/x?q=1 host reviews.example", r.Path, r.Host)
				}
				expect(t, w, b, "GET", "/exact", nil, 200, "reviews-v2")
				expect(t, w, b, "GET", "/exact/no", nil, 200, "reviews-v1")
				expect(t, w, b, "GET", "/re/42", nil, 200, "reviews-v2")
				expect(t, w, b, "GET", "/re/4x", nil, 200, "reviews-v1")
			},
		},
		compatCase{
			name:      "vs-redirect",
			resources: "VirtualService: `/moved` redirected (uri `/here`, authority `elsewhere.example`, code 301)",
			checks:    "301 with `location: http://elsewhere.example/here`, no workload reached",
			yaml: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {exact: /moved}
    redirect: {uri: /here, authority: elsewhere.example, redirectCode: 301}
  - route:
    - destination: {host: reviews}
`,
			check: func(t *testing.T, w *world, b *base) {
				hits := b.v1.hits.Load() + b.v2.hits.Load()
				req, _ := http.NewRequest("GET", b.url("/moved"), nil)
				c := w.source("productpage").HTTP()
				c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 301 || resp.Header.Get("location") != "http://elsewhere.example/here" {
					t.Errorf("got %d location %q", resp.StatusCode, resp.Header.Get("location"))
				}
				if n := b.v1.hits.Load() + b.v2.hits.Load(); n != hits {
					t.Errorf("a redirect reached a workload")
				}
			},
		},
		compatCase{
			name:      "vs-headers",
			resources: "VirtualService headers: request set/add/remove, response set/remove, per route and per destination",
			checks:    "the workload sees the set and added headers and not the removed one; the client sees the response header set and not the removed one",
			yaml: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - headers:
      request:
        set: {x-set: "route"}
        add: {x-added: "yes"}
        remove: [x-secret]
      response:
        set: {x-served-by: "waypoint"}
        remove: [x-pod]
    route:
    - destination: {host: reviews}
      headers:
        request:
          set: {x-dest: "reviews"}
`,
			check: func(t *testing.T, w *world, b *base) {
				req, _ := http.NewRequest("GET", b.url("/h"), nil)
				req.Header.Set("x-secret", "s")
				req.Header.Set("x-set", "client")
				resp, err := w.source("productpage").HTTP().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var r echoReply
				decodeJSON(t, resp, &r)
				if resp.Header.Get("x-served-by") != "waypoint" || resp.Header.Get("x-pod") != "" {
					t.Errorf("response headers %v", resp.Header)
				}
				h := r.Headers
				if h.Get("x-set") != "route" || h.Get("x-added") != "yes" || h.Get("x-secret") != "" || h.Get("x-dest") != "reviews" {
					t.Errorf("the workload saw %v", h)
				}
			},
		},
		compatCase{
			name:      "vs-retries",
			resources: "VirtualService retries: attempts 2, retryOn `5xx`, perTryTimeout 2s",
			checks:    "a request the workload answers 503 is tried 3 times, then 503 reaches the client; a 404 is not retried",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    retries: {attempts: 2, retryOn: 5xx, perTryTimeout: 2s}
`,
			check: func(t *testing.T, w *world, b *base) {
				before := b.v1.hits.Load()
				expect(t, w, b, "GET", "/", http.Header{"X-Echo-Status": {"503"}}, 503, "reviews-v1")
				if n := b.v1.hits.Load() - before; n != 3 {
					t.Errorf("503 tried %d times, want 3", n)
				}
				before = b.v1.hits.Load()
				expect(t, w, b, "GET", "/", http.Header{"X-Echo-Status": {"404"}}, 404, "reviews-v1")
				if n := b.v1.hits.Load() - before; n != 1 {
					t.Errorf("404 tried %d times, want 1", n)
				}
			},
		},
		compatCase{
			name:      "vs-timeout",
			resources: "VirtualService timeout 500ms (retries off)",
			checks:    "a workload answering after 3 s gives the client 504 `upstream request timeout`; one answering at once, 200",
			yaml: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    timeout: 500ms
    retries: {attempts: 0}
`,
			check: func(t *testing.T, w *world, b *base) {
				start := time.Now()
				code, _, err := w.call("productpage", "GET", b.url("/slow"), http.Header{"X-Echo-Delay": {"3s"}})
				if err != nil || code != 504 {
					t.Errorf("slow: %d %v, want 504", code, err)
				}
				if d := time.Since(start); d >= 3*time.Second {
					t.Errorf("answered after %v: the timeout did not cut the wait", d)
				}
				expect(t, w, b, "GET", "/fast", nil, 200, "")
			},
		},
		compatCase{
			name:      "vs-fault",
			resources: "VirtualService fault: abort 418 on `/teapot`, fixed delay 1s on `/late` (100%)",
			checks:    "`/teapot` is 418 and reaches no workload; `/late` answers 200 after at least 1 s",
			yaml: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {exact: /teapot}
    fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
    route:
    - destination: {host: reviews}
  - match:
    - uri: {exact: /late}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 100}}
    route:
    - destination: {host: reviews}
  - route:
    - destination: {host: reviews}
`,
			check: func(t *testing.T, w *world, b *base) {
				hits := b.v1.hits.Load() + b.v2.hits.Load()
				expect(t, w, b, "GET", "/teapot", nil, 418, "")
				if b.v1.hits.Load()+b.v2.hits.Load() != hits {
					t.Errorf("an aborted request reached a workload")
				}
				start := time.Now()
				expect(t, w, b, "GET", "/late", nil, 200, "")
				if d := time.Since(start); d < time.Second {
					t.Errorf("delayed request answered after %v, want at least 1s", d)
				}
			},
		},
		compatCase{
			name:      "vs-cors",
			resources: "VirtualService corsPolicy: allowOrigins exact `https://shop.example`, methods GET/POST, allowHeaders x-token, maxAge 1h",
			checks:    "a preflight from the allowed origin gets the allow headers and reaches no workload; one from another origin gets none",
			yaml: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      maxAge: 1h
    route:
    - destination: {host: reviews}
`,
			check: func(t *testing.T, w *world, b *base) {
				preflight := func(origin string) *http.Response {
					req, _ := http.NewRequest("OPTIONS", b.url("/api"), nil)
					req.Header.Set("Origin", origin)
					req.Header.Set("Access-Control-Request-Method", "POST")
					resp, err := w.source("productpage").HTTP().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					return resp
				}
				hits := b.v1.hits.Load() + b.v2.hits.Load()
				resp := preflight("https://shop.example")
				if resp.StatusCode != 200 || resp.Header.Get("access-control-allow-origin") != "https://shop.example" ||
					!strings.Contains(resp.Header.Get("access-control-allow-methods"), "POST") || resp.Header.Get("access-control-max-age") != "3600" {
					t.Errorf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
				}
				if b.v1.hits.Load()+b.v2.hits.Load() != hits {
					t.Errorf("the allowed preflight reached a workload")
				}
				if resp := preflight("https://evil.example"); resp.Header.Get("access-control-allow-origin") != "" {
					t.Errorf("another origin was allowed: %v", resp.Header)
				}
			},
		},
		compatCase{
			name:      "vs-mirror",
			resources: "VirtualService: route to v1, `mirrors` 100% to v2",
			checks:    "10 requests (GET and POST with a body): v1 answers each; v2 gets a copy of each, body and Host included (istiod disables the `-shadow` host suffix)",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    mirrors:
    - destination: {host: reviews, subset: v2}
      percentage: {value: 100}
`,
			check: mirrorCheck,
		},
		compatCase{
			name:      "vs-weighted-subsets",
			resources: "DestinationRule subsets; VirtualService weights 50/50 on HTTP, 100% v2 on gRPC (port 9090) and TCP (port 9300)",
			checks:    "200 HTTP requests land 100±30 on each subset; gRPC calls and TCP connections all on v2",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - port: 9090
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9090}}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 50
  tcp:
  - match:
    - port: 9300
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9300}}
`,
			check: func(t *testing.T, w *world, b *base) {
				got := map[string]int{}
				for i := 0; i < 200; i++ {
					got[expect(t, w, b, "GET", "/", nil, 200, "").Pod]++
				}
				if got["reviews-v1"] < 70 || got["reviews-v2"] < 70 {
					t.Errorf("50/50 split: %v", got)
				}
				for i := 0; i < 5; i++ {
					if pod, err := w.grpcCall("productpage", b.vip+":9090", "/echo.Echo/Say"); err != nil || pod != "reviews-v2" {
						t.Errorf("gRPC: %q %v, want reviews-v2", pod, err)
					}
					if pod, err := w.tcpCall("productpage", b.vip+":9300"); err != nil || pod != "reviews-v2" {
						t.Errorf("TCP: %q %v, want reviews-v2", pod, err)
					}
				}
			},
		},
	)
}

// decodeJSON reads an echo reply from resp.
func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := jsonDecode(resp, v); err != nil {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

package waypoint

// The fixture's AuthorizationPolicies (world.yaml) as istiod compiled them
// for the waypoint (listeners.json), taken over delta ADS with the rest of
// istiod's layout and enforced end to end over HBONE, each caller with its
// own certificate. Same addresses as istiod_test.go.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// The rules that decide, by the RBAC counters each decision moves
// (envoy_{http,tcp}_rbac_{allowed,denied}{prefix, policy}).
//
// On the service's HTTP chains (9080, and 9090 for gRPC) istiod puts two
// HTTP RBAC filters before the fault filter: deny-admin (DENY, rule[0]:
// url_path prefix /admin, any principal), then reviews-viewer (ALLOW,
// rule[0]: peer principal exactly productpage's, :method GET, url_path
// prefix /api/ or /reviews/; rule[1]: peer principal matching the regex
// .*/ns/monitoring/.*, url_path exactly /metrics, any method). A request
// passing deny-admin counts allowed{none} there, then what reviews-viewer
// decides.
//
// On the TCP chain (9300) its rules are HTTP-only, so istiod writes
// deny-admin without its paths (deny every connection) and reviews-viewer
// without rules (allow none); the first denies.
//
// The pod-addressed chains (direct-http, direct-tcp) have no RBAC filter:
// the policies target the ServiceEntry, not its workloads.
const (
	denyAdmin   = "deny-admin"           // deny-admin rule[0] matched: denied
	viewerRule0 = "reviews-viewer[0]"    // allowed by reviews-viewer rule[0]
	viewerRule1 = "reviews-viewer[1]"    // allowed by reviews-viewer rule[1]
	noRule      = "no ALLOW rule"        // passed deny-admin, matched no ALLOW rule: denied
	tcpDeny     = "deny-admin (TCP)"     // the network RBAC's deny-admin: closed
	noRBAC      = "no RBAC on the chain" // pod-addressed
)

// rbacCounts are the RBAC counters a decision moves, by series.
var rbacCounts = map[string][]string{
	denyAdmin:   {`envoy_http_rbac_denied{policy="ns[default]-policy[deny-admin]-rule[0]",prefix=""}`},
	viewerRule0: {`envoy_http_rbac_allowed{policy="none",prefix=""}`, `envoy_http_rbac_allowed{policy="ns[default]-policy[reviews-viewer]-rule[0]",prefix=""}`},
	viewerRule1: {`envoy_http_rbac_allowed{policy="none",prefix=""}`, `envoy_http_rbac_allowed{policy="ns[default]-policy[reviews-viewer]-rule[1]",prefix=""}`},
	noRule:      {`envoy_http_rbac_allowed{policy="none",prefix=""}`, `envoy_http_rbac_denied{policy="none",prefix=""}`},
	tcpDeny:     {`envoy_tcp_rbac_denied{policy="ns[default]-policy[deny-admin]-rule[0]",prefix="tcp."}`},
	noRBAC:      nil,
}

// Where a case is sent.
const (
	svcHTTP    = "VIP 9080 (HTTP)"
	svcGRPC    = "VIP 9090 (gRPC)"
	svcTCP     = "VIP 9300 (TCP)"
	directHTTP = "pod 9080 (direct-http)"
	directTCP  = "pod 9300 (direct-tcp)"
)

// authzCase is one request and the verdict Envoy gives it.
type authzCase struct {
	who, to      string // an identity of fixtureIDs; where it is sent
	method, path string // HTTP; for gRPC, path is the method
	header       map[string]string
	rule         string // the deciding rule (above)
	// seen is part of what the caller gets when allowed: the HTTP app's
	// answer ("version=vN path=P", P after routing), what the app saw of a
	// gRPC call, the TCP echo.
	seen string
}

func (c authzCase) allowed() bool {
	return c.rule == viewerRule0 || c.rule == viewerRule1 || c.rule == noRBAC
}

func (c authzCase) String() string {
	s := fmt.Sprintf("%s %s %s %s", c.who, c.to, c.method, c.path)
	for k, v := range c.header {
		s += fmt.Sprintf(" %s:%s", k, v)
	}
	return s
}

var authzCases = []authzCase{
	// reviews-viewer rule[0]: productpage, GET, /api/* or /reviews/*.
	{who: "productpage", to: svcHTTP, method: "GET", path: "/api/v1/reviews", rule: viewerRule0, seen: "path=/v1/v1/reviews"},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/reviews/1", rule: viewerRule0, seen: "path=/reviews/1"},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/reviews/1?rating=5", rule: viewerRule0, seen: "path=/reviews/1"}, // url_path: no query
	{who: "productpage", to: svcHTTP, method: "GET", path: "/api/./v1", rule: viewerRule0, seen: "path=/v1/v1"},               // normalize_path
	{who: "productpage", to: svcHTTP, method: "GET", path: "/reviews/1", header: map[string]string{"end-user": "jason"}, rule: viewerRule0, seen: "version=v2 path=/reviews/1"},
	{who: "productpage", to: svcHTTP, method: "POST", path: "/reviews/1", rule: noRule},
	{who: "productpage", to: svcHTTP, method: "PUT", path: "/api/v1", rule: noRule},
	{who: "productpage", to: svcHTTP, method: "DELETE", path: "/reviews/1", rule: noRule},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/reviews", rule: noRule}, // the prefix is /reviews/
	{who: "productpage", to: svcHTTP, method: "GET", path: "/api", rule: noRule},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/metrics", rule: noRule},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/teapot", rule: noRule}, // RBAC runs before the fault filter
	{who: "productpage", to: svcHTTP, method: "GET", path: "/ADMIN", rule: noRule},  // case-sensitive: not deny-admin's
	{who: "other/productpage", to: svcHTTP, method: "GET", path: "/reviews/1", rule: noRule},
	{who: "ratings", to: svcHTTP, method: "GET", path: "/reviews/1", rule: noRule},
	{who: "ratings", to: svcHTTP, method: "GET", path: "/api/v1", rule: noRule},
	// deny-admin: /admin*, whoever asks.
	{who: "productpage", to: svcHTTP, method: "GET", path: "/admin", rule: denyAdmin},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/admin/users", rule: denyAdmin},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/administrator", rule: denyAdmin},
	{who: "productpage", to: svcHTTP, method: "GET", path: "/api/../admin", rule: denyAdmin}, // normalize_path: /admin
	{who: "ratings", to: svcHTTP, method: "POST", path: "/admin/x", rule: denyAdmin},
	{who: "prometheus", to: svcHTTP, method: "GET", path: "/admin", rule: denyAdmin},
	// reviews-viewer rule[1]: namespace monitoring, /metrics, any method.
	{who: "prometheus", to: svcHTTP, method: "GET", path: "/metrics", rule: viewerRule1, seen: "path=/metrics"},
	{who: "prometheus", to: svcHTTP, method: "POST", path: "/metrics", rule: viewerRule1, seen: "path=/metrics"},
	{who: "prometheus", to: svcHTTP, method: "DELETE", path: "/metrics?all=1", rule: viewerRule1, seen: "path=/metrics"},
	{who: "grafana", to: svcHTTP, method: "GET", path: "/metrics", rule: viewerRule1, seen: "path=/metrics"},
	{who: "prometheus", to: svcHTTP, method: "GET", path: "/metrics/", rule: noRule}, // exact
	{who: "prometheus", to: svcHTTP, method: "GET", path: "/reviews/1", rule: noRule},
	{who: "default/monitoring", to: svcHTTP, method: "GET", path: "/metrics", rule: noRule}, // a service account, not the namespace
	{who: "ratings", to: svcHTTP, method: "GET", path: "/metrics", rule: noRule},
	// The gRPC port: the same filters; a gRPC call is a POST. istiod routes
	// it to the 9080 clusters (HTTP/1.1): an allowed call reaches the app,
	// whose answer is not gRPC.
	{who: "productpage", to: svcGRPC, method: "POST", path: "/grpc.health.v1.Health/Check", rule: noRule},
	{who: "productpage", to: svcGRPC, method: "POST", path: "/reviews.Reviews/Get", rule: noRule},
	{who: "productpage", to: svcGRPC, method: "POST", path: "/admin.Admin/Get", rule: denyAdmin},
	{who: "prometheus", to: svcGRPC, method: "POST", path: "/metrics", rule: viewerRule1, seen: "HTTP/1.1 POST /metrics te=trailers"},
	{who: "prometheus", to: svcGRPC, method: "POST", path: "/grpc.health.v1.Health/Check", rule: noRule},
	// The TCP port: the network RBAC denies every connection.
	{who: "productpage", to: svcTCP, rule: tcpDeny},
	{who: "prometheus", to: svcTCP, rule: tcpDeny},
	{who: "ratings", to: svcTCP, rule: tcpDeny},
	// Pod-addressed: no RBAC.
	{who: "ratings", to: directHTTP, method: "GET", path: "/admin", rule: noRBAC, seen: "version=v1 path=/admin"},
	{who: "other/productpage", to: directHTTP, method: "POST", path: "/reviews/1", rule: noRBAC, seen: "version=v1 path=/reviews/1"},
	{who: "ratings", to: directTCP, rule: noRBAC, seen: "v1 echo ping\n"},
}

// TestIstiodAuthorizationOverADS runs the table above against the whole
// fixture over delta ADS. Each case checks the answer the caller gets,
// whether a backend saw the request, and which rule decided (the RBAC
// counters it moved, and none other).
func TestIstiodAuthorizationOverADS(t *testing.T) {
	e := startFixture(t, withDirectChains(t, xdstest.Reviews(t)), true)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(hc.CloseIdleConnections)
	covered := map[string]int{}
	after := rbacCounters(t, hc)
	for _, tc := range authzCases {
		covered[tc.rule]++
		before := after
		beforeHTTP := e.v1.requests.Load() + e.v2.requests.Load()
		beforeTCP := e.v1.tcpConns.Load() + e.v2.tcpConns.Load()
		got := e.send(t, hc, tc)
		want := "denied"
		if tc.allowed() {
			want = tc.seen
		}
		switch {
		case tc.allowed() && !strings.Contains(got, want), !tc.allowed() && got != want:
			t.Errorf("%v: got %s, want %s (%s)", tc, got, want, tc.rule)
		}
		seenHTTP := e.v1.requests.Load() + e.v2.requests.Load() - beforeHTTP
		seenTCP := e.v1.tcpConns.Load() + e.v2.tcpConns.Load() - beforeTCP
		if n := seenHTTP + seenTCP; n != map[bool]int64{true: 1, false: 0}[tc.allowed()] {
			t.Errorf("%v: the pods saw %d requests and %d connections", tc, seenHTTP, seenTCP)
		}
		after = rbacCounters(t, hc)
		moved := diffCounters(before, after)
		if w := strings.Join(rbacCounts[tc.rule], " "); strings.Join(moved, " ") != w {
			t.Errorf("%v: RBAC counters moved: %v\nwant (%s)        %v", tc, moved, tc.rule, rbacCounts[tc.rule])
		}
	}
	for rule := range rbacCounts {
		if covered[rule] == 0 {
			t.Errorf("no case decided by %s", rule)
		}
	}
	t.Logf("%d cases: %v", len(authzCases), covered)
}

// send makes tc's request through its caller's ztunnel and reports what
// the caller got: "denied" for Envoy's RBAC denial (HTTP 403 "RBAC: access
// denied", gRPC status 7 with that message, or a TCP stream closed after
// the CONNECT with nothing read), else the answer.
func (e *fixtureEnv) send(t *testing.T, hc *http.Client, tc authzCase) string {
	t.Helper()
	c := e.client(tc.who)
	switch tc.to {
	case svcTCP, directTCP:
		to := fixtureVIP + ":9300"
		if tc.to == directTCP {
			to = podV1 + ":9300"
		}
		if got := tcpEcho(t, c.via(to)); got != "" {
			return got
		}
		return "denied"
	case svcGRPC:
		e.lastGRPC() // forget earlier calls
		gc, ctx := dialGRPC(t, c.via(fixtureVIP+":9090"))
		err := gc.Invoke(ctx, tc.path, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		st := grpcstatus.Convert(err)
		switch {
		case st.Code() == codes.PermissionDenied && st.Message() == "RBAC: access denied":
			return "denied"
		case st.Code() == codes.Unknown && strings.Contains(st.Message(), `content-type "text/plain`):
			// The 9080 app's HTTP/1.1 answer, not gRPC.
			return "a non-gRPC answer from an app that saw " + e.lastGRPC()
		}
		return fmt.Sprintf("gRPC %v", err)
	}
	to := fixtureVIP + ":9080"
	if tc.to == directHTTP {
		to = podV1 + ":9080"
	}
	req, err := http.NewRequest(tc.method, "http://"+c.via(to)+tc.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque, _, _ = strings.Cut(tc.path, "?") // sent as written: the waypoint normalizes
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%v: %v", tc, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 403 && string(body) == "RBAC: access denied" {
		return "denied"
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

// lastGRPC returns and clears what the pods' HTTP apps saw of the last
// gRPC request.
func (e *fixtureEnv) lastGRPC() string {
	var seen string
	for _, p := range []*pod{e.v1, e.v2} {
		p.mu.Lock()
		seen += p.lastGRPC
		p.lastGRPC = ""
		p.mu.Unlock()
	}
	return seen
}

// rbacCounters scrapes the waypoint's RBAC decision counters from its
// admin's /stats/prometheus, by series (name{label="value",...}, labels
// sorted).
func rbacCounters(t *testing.T, hc *http.Client) map[string]float64 {
	t.Helper()
	resp, err := hc.Get("http://" + adminAddr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Only the RBAC families are parsed: the Istio metrics make the rest
	// large.
	var rbac strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if name := strings.TrimPrefix(strings.TrimPrefix(l, "# HELP "), "# TYPE "); strings.HasPrefix(name, "envoy_http_rbac_") ||
			strings.HasPrefix(name, "envoy_tcp_rbac_") {
			rbac.WriteString(l + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rbac.String()))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// diffCounters lists, sorted, the series that grew by exactly one; one
// that moved by more is listed with its delta.
func diffCounters(before, after map[string]float64) []string {
	var moved []string
	for k, v := range after {
		switch d := v - before[k]; {
		case d == 1:
			moved = append(moved, k)
		case d != 0:
			moved = append(moved, fmt.Sprintf("%s+%v", k, d))
		}
	}
	sort.Strings(moved)
	return moved
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
)

// Tests of this file use 127.0.65.0/24 to 127.0.69.0/24.

// The reviews mesh with Dubbo (reviewsOptions.Dubbo), on 127.0.65.0/24:
// the fixture's policies and DubboPolicy, each case asked over HTTP
// (9080), gRPC (9090) and Dubbo (20880) with the same path, by a source
// with its own certificate. Envoy's verdicts: a denial is HTTP 403, gRPC
// status 7 and Dubbo status 40, each with "RBAC: access denied". :method
// is the HTTP method, POST for gRPC, the Dubbo method for Dubbo: the
// fixture's rule[0] (productpage GET /api/*) allows none of a gRPC or
// Dubbo call's methods.
func TestAuthorizationPoliciesDubbo(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	var sources []string
	for _, who := range []string{"productpage", "ratings", "prometheus"} {
		for _, port := range []string{"9080", "9090", "20880"} {
			sources = append(sources, who+"/"+port)
		}
	}
	sources = append(sources, "productpage/20881")
	e := newReviewsEnv(t, 65, reviewsOptions{Dubbo: true, AccessLogDir: logs, Sources: sources,
		WaypointArgs: []string{"--drain-timeout", "3s"}})
	web := &http.Client{Timeout: 10 * time.Second}
	consumers := map[string]*dubbotest.Consumer{}
	for _, who := range []string{"productpage", "ratings", "prometheus"} {
		c, err := dubbotest.Dial(e.source(who, 20880))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		consumers[who] = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := scrape(t, e.metricsURL())

	type verdict struct {
		http int
		grpc codes.Code
		// dubbo is the Dubbo status (20: the provider's answer).
		dubbo byte
	}
	allowed := verdict{200, codes.Unimplemented, 20} // gRPC: the call reached the server, which has no such method
	denied := verdict{403, codes.PermissionDenied, 40}
	cases := []struct {
		who, iface, method string
		want               verdict
		policy             string // the deciding policy, counted
	}{
		{"productpage", "reviews.ReviewService", "get", allowed, DubboPolicy},
		{"productpage", "reviews.ReviewService", "list", allowed, DubboPolicy},
		{"productpage", "reviews.ReviewService", "GET", allowed, DubboPolicy},
		{"ratings", "reviews.ReviewService", "get", denied, "none"},
		{"prometheus", "reviews.ReviewService", "get", denied, "none"},
		{"productpage", "admin.AdminService", "reset", denied, "ns[default]-policy[deny-admin]-rule[0]"},
		{"ratings", "admin", "users", denied, "ns[default]-policy[deny-admin]-rule[0]"},
		{"prometheus", "administrator", "x", denied, "ns[default]-policy[deny-admin]-rule[0]"},
		{"productpage", "reviews.Other", "get", denied, "none"},
		{"ratings", "reviews.Other", "get", denied, "none"},
	}
	// /api/get: rule[0] allows productpage's HTTP GET; a gRPC call is a POST
	// and a Dubbo call's :method is its method, "get".
	apiCase := struct{ who, iface, method string }{"productpage", "api", "get"}
	dubboAllowed := 0
	for i, tc := range cases {
		path := "/" + tc.iface + "/" + tc.method
		resp, err := web.Get("http://" + e.source(tc.who, 9080) + path)
		if err != nil {
			t.Fatalf("%s HTTP %s: %v", tc.who, path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want.http || (tc.want.http == 403 && string(body) != "RBAC: access denied") {
			t.Errorf("%s HTTP GET %s: %d %q, want %d", tc.who, path, resp.StatusCode, body, tc.want.http)
		}

		conn, err := grpc.NewClient(e.source(tc.who, 9090), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Invoke(ctx, path, &testgrpc.Empty{}, &testgrpc.Empty{})
		conn.Close()
		if st := grpcstatus.Convert(err); st.Code() != tc.want.grpc || (tc.want.grpc == codes.PermissionDenied && st.Message() != "RBAC: access denied") {
			t.Errorf("%s gRPC %s: %v, want %v", tc.who, path, err, tc.want.grpc)
		}

		r, err := consumers[tc.who].Call(ctx, hessian.Service{Path: tc.iface, Interface: tc.iface, Method: tc.method, Version: "1.0.0"},
			[]any{int32(i)}, map[string]string{"call-id": fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("%s Dubbo %s: %v", tc.who, path, err)
		}
		switch {
		case r.Status != tc.want.dubbo:
			t.Errorf("%s Dubbo %s: status %d %v %q, want %d", tc.who, path, r.Status, r.Value, r.ErrorMessage, tc.want.dubbo)
		case r.Status == 40 && r.ErrorMessage != "RBAC: access denied":
			t.Errorf("%s Dubbo %s: message %q", tc.who, path, r.ErrorMessage)
		case r.Status == 20 && !strings.HasPrefix(fmt.Sprint(r.Value), "reviews-v") || r.Status == 20 && !strings.HasSuffix(fmt.Sprint(r.Value), fmt.Sprintf(": %s(%d)", tc.method, i)):
			t.Errorf("%s Dubbo %s: answer %v, not a reviews pod's", tc.who, path, r.Value)
		}
		if r.Status == 20 {
			dubboAllowed++
		}
	}
	t.Run("the method of a Dubbo call is its :method", func(t *testing.T) {
		path := "/" + apiCase.iface + "/" + apiCase.method
		resp, err := web.Get("http://" + e.source(apiCase.who, 9080) + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn, err := grpc.NewClient(e.source(apiCase.who, 9090), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Invoke(ctx, path, &testgrpc.Empty{}, &testgrpc.Empty{})
		conn.Close()
		r, err2 := consumers[apiCase.who].Call(ctx, hessian.Service{Path: apiCase.iface, Method: apiCase.method}, nil, map[string]string{"call-id": "api"})
		if err2 != nil {
			t.Fatal(err2)
		}
		if resp.StatusCode != 200 || grpcstatus.Code(err) != codes.PermissionDenied || r.Status != 40 {
			t.Errorf("%s %s: HTTP GET %d (want 200), gRPC %v (want PermissionDenied), Dubbo %d (want 40)", apiCase.who, path, resp.StatusCode, err, r.Status)
		}
	})

	// A call's metrics are recorded as its stream ends, which may be just
	// after the consumer has read the reply.
	wantDubbo := float64(len(cases) + 1)
	dubboLabels := map[string]string{"reporter": "waypoint", "request_protocol": "dubbo"}
	after := scrapeUntil(t, e.metricsURL(), func(f map[string]*dto.MetricFamily) bool {
		for _, name := range []string{"istio_requests_total", "istio_request_bytes", "istio_request_duration_milliseconds"} {
			if sumMetric(f, name, dubboLabels)-sumMetric(before, name, dubboLabels) < wantDubbo {
				return false
			}
		}
		return true
	})
	t.Run("decisions are counted per policy", func(t *testing.T) {
		perPolicy := map[string]float64{}
		for _, tc := range cases {
			perPolicy[tc.policy] += 3 // HTTP, gRPC, Dubbo
		}
		perPolicy["none"] += 2 // the /api/get case: gRPC and Dubbo
		for policy, n := range perPolicy {
			name := "envoy_http_rbac_denied"
			if policy == DubboPolicy {
				name = "envoy_http_rbac_allowed"
			}
			l := map[string]string{"policy": policy}
			if got := sumMetric(after, name, l) - sumMetric(before, name, l); got != n {
				t.Errorf("%s{policy=%q} rose by %v, want %v", name, policy, got, n)
			}
		}
	})

	t.Run("istio metrics of the Dubbo calls", func(t *testing.T) {
		delta := func(name string, l map[string]string) float64 {
			return sumMetric(after, name, l) - sumMetric(before, name, l)
		}
		dubbo := map[string]string{"reporter": "waypoint", "request_protocol": "dubbo"}
		with := func(extra map[string]string) map[string]string {
			l := map[string]string{}
			for k, v := range dubbo {
				l[k] = v
			}
			for k, v := range extra {
				l[k] = v
			}
			return l
		}
		if got := delta("istio_requests_total", dubbo); got != float64(len(cases)+1) {
			t.Errorf("%v Dubbo requests counted, want %d", got, len(cases)+1)
		}
		if got := delta("istio_requests_total", with(map[string]string{"response_code": "200"})); got != float64(dubboAllowed) {
			t.Errorf("%v Dubbo 200s counted, the consumers got %d", got, dubboAllowed)
		}
		if got := delta("istio_requests_total", with(map[string]string{"response_code": "403"})); got != float64(len(cases)+1-dubboAllowed) {
			t.Errorf("%v Dubbo 403s counted, the consumers got %d denials", got, len(cases)+1-dubboAllowed)
		}
		for _, l := range labelsOf(after, "istio_requests_total", with(map[string]string{"response_code": "200"})) {
			for k, v := range map[string]string{
				"source_workload": "productpage-v1", "source_principal": "spiffe://cluster.local/ns/default/sa/productpage",
				"source_canonical_service": "productpage", "source_cluster": "Kubernetes", "connection_security_policy": "mutual_tls",
				"destination_service": "reviews.mesh.local", "destination_workload_namespace": "default", "destination_canonical_service": "reviews",
				"grpc_response_status": "", "response_flags": "-",
			} {
				if l[k] != v {
					t.Errorf("a Dubbo 200 series: %s=%q, want %q", k, l[k], v)
				}
			}
			if w := l["destination_workload"]; w != "reviews-v1" && w != "reviews-v2" {
				t.Errorf("a Dubbo 200 series: destination_workload %q", w)
			}
		}
		if got := delta("istio_request_bytes", with(nil)); got != float64(len(cases)+1) {
			t.Errorf("istio_request_bytes observed %v Dubbo calls, want %d", got, len(cases)+1)
		}
		if got := delta("istio_request_duration_milliseconds", with(nil)); got != float64(len(cases)+1) {
			t.Errorf("istio_request_duration_milliseconds observed %v Dubbo calls, want %d", got, len(cases)+1)
		}
		if got := delta("envoy_cluster_upstream_rq_total", map[string]string{"cluster_name": "reviews-dubbo"}); got != float64(dubboAllowed) {
			t.Errorf("envoy_cluster_upstream_rq_total{reviews-dubbo} rose by %v, want %d", got, dubboAllowed)
		}
	})

	t.Run("network RBAC closes a Dubbo connection", func(t *testing.T) {
		deniedBefore := sumMetric(after, "envoy_tcp_rbac_denied", map[string]string{"prefix": "tcp."})
		calls := e.pods["reviews-v1"].dubbo.Calls.Load() + e.pods["reviews-v2"].dubbo.Calls.Load()
		conn, err := net.DialTimeout("tcp", e.source("productpage", 20881), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		frame, err := dubbotest.Request(1, true, hessian.Service{Path: "reviews.ReviewService", Method: "get"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(frame)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, conn)
		// Closed: a FIN, or a reset when the stand-in closed with the frame still unread.
		if n != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
			t.Errorf("read %d bytes, %v; want the connection closed without an answer", n, err)
		}
		if now := e.pods["reviews-v1"].dubbo.Calls.Load() + e.pods["reviews-v2"].dubbo.Calls.Load(); now != calls {
			t.Errorf("the providers received %d calls", now-calls)
		}
		if d := sumMetric(scrape(t, e.metricsURL()), "envoy_tcp_rbac_denied", map[string]string{"prefix": "tcp."}) - deniedBefore; d != 1 {
			t.Errorf("tcp denials counted: %v, want 1", d)
		}
	})

	t.Run("access log lines of the Dubbo calls", func(t *testing.T) {
		lines := waitLines(t, filepath.Join(logs, "dubbo.json"), len(cases)+1)
		byCall := map[string]map[string]any{}
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			id, _ := m["call"].(string)
			byCall[id] = m
		}
		for i, tc := range cases {
			m := byCall[fmt.Sprint(i)]
			if m == nil {
				t.Errorf("no access log line for call %d", i)
				continue
			}
			want := map[string]any{"path": "/" + tc.iface + "/" + tc.method, "method": tc.method, "protocol": "dubbo",
				"peer": reviewsID("default", tc.who).String(), "route": "reviews-dubbo"}
			if tc.who == "prometheus" {
				want["peer"] = reviewsID("monitoring", "prometheus").String()
			}
			if tc.want.dubbo == 20 {
				want["code"], want["dubbo_status"], want["details"], want["cluster"] = 200.0, "20", "via_upstream", "reviews-dubbo"
			} else {
				want["code"], want["dubbo_status"], want["cluster"], want["upstream"] = 403.0, "40", nil, nil
				want["details"] = "rbac_access_denied_matched_policy[" + tc.policy + "]"
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("call %d: %s = %#v, want %#v (%v)", i, k, m[k], v, m)
				}
			}
			if tc.want.dubbo == 20 {
				if d := m["destination"]; d != "reviews-v1" && d != "reviews-v2" {
					t.Errorf("call %d: destination %v", i, d)
				}
			}
		}
	})

	t.Run("draining sends the consumers the readonly event", func(t *testing.T) {
		c := consumers["productpage"]
		if c.Readonly.Load() != 0 {
			t.Fatalf("%d readonly events before the drain", c.Readonly.Load())
		}
		stopped := make(chan struct{})
		go func() { e.waypoint.stop(10 * time.Second); close(stopped) }()
		deadline := time.Now().Add(5 * time.Second)
		for c.Readonly.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if c.Readonly.Load() != 1 {
			t.Errorf("%d readonly events after SIGTERM, want 1", c.Readonly.Load())
		}
		// The drain serves calls still sent until it ends (3 s).
		r, err := c.Call(ctx, hessian.Service{Path: "reviews.ReviewService", Method: "get"}, []any{int32(0)}, nil)
		if err != nil || r.Status != 20 {
			t.Errorf("a call during the drain: %+v %v", r, err)
		}
		<-stopped
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Error("the consumer's connection is still open after the waypoint stopped")
		}
	})
}

// waitLines waits for a file to have n lines (access logs are flushed every
// second) and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after 10 s, want %d", path, len(lines), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

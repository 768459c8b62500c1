package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcstatus "google.golang.org/grpc/status"
)

// Tests of this file and reviewsenv_test.go use 127.0.60.0/24 to
// 127.0.64.0/24.

// istiod's reviews policies, enforced over HBONE with a certificate per
// identity: deny-admin (DENY /admin*), then reviews-viewer (ALLOW
// productpage GET /api/* and /reviews/*; ALLOW namespace monitoring on
// /metrics). The verdicts are Envoy's.
func TestAuthorizationPolicies(t *testing.T) {
	t.Parallel()
	e := newReviewsEnv(t, 60, reviewsOptions{Sources: []string{
		"productpage/9080", "ratings/9080", "prometheus/9080",
		"productpage/9090", "prometheus/9090",
		"productpage/9300", "prometheus/9300",
	}})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	cases := []struct {
		who, method, path string
		want              int
	}{
		{"productpage", "GET", "/api/v1/reviews", 200},
		{"productpage", "GET", "/reviews/1", 200},
		{"productpage", "GET", "/reviews/1?rating=5", 200},
		{"productpage", "GET", "/api", 403},
		{"productpage", "GET", "/reviews", 403},
		{"productpage", "POST", "/api/v1/reviews", 403},
		{"productpage", "PUT", "/reviews/1", 403},
		{"productpage", "DELETE", "/reviews/1", 403},
		{"productpage", "HEAD", "/reviews/1", 403},
		{"productpage", "GET", "/admin", 403},
		{"productpage", "GET", "/admin/users", 403},
		{"productpage", "GET", "/administrator", 403},
		{"productpage", "GET", "/api/../admin", 403}, // normalize_path makes it /admin
		{"productpage", "GET", "/api/./v1", 200},     // and this /api/v1
		{"productpage", "GET", "/ADMIN", 403},        // not /admin: no ALLOW rule either
		{"productpage", "GET", "/metrics", 403},
		{"ratings", "GET", "/reviews/1", 403},
		{"ratings", "GET", "/api/v1", 403},
		{"ratings", "GET", "/metrics", 403},
		{"ratings", "GET", "/admin", 403},
		{"prometheus", "GET", "/metrics", 200},
		{"prometheus", "POST", "/metrics", 200},
		{"prometheus", "GET", "/metrics?format=prometheus", 200},
		{"prometheus", "GET", "/metrics/extra", 403},
		{"prometheus", "GET", "/reviews/1", 403},
		{"prometheus", "GET", "/admin", 403},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, "http://"+e.source(tc.who, 9080)+tc.path, nil)
		req.URL.Opaque, _, _ = strings.Cut(tc.path, "?") // sent as written: the waypoint normalizes
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s %s: %v", tc.who, tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %s: %d %q, want %d", tc.who, tc.method, tc.path, resp.StatusCode, body, tc.want)
			continue
		}
		switch {
		case tc.want == 403 && (tc.method != "HEAD" && string(body) != "RBAC: access denied"):
			t.Errorf("%s %s %s: denial body %q", tc.who, tc.method, tc.path, body)
		case tc.want == 200 && !strings.HasPrefix(resp.Header.Get("x-pod"), "reviews-"):
			t.Errorf("%s %s %s: answered by %q, not a reviews pod", tc.who, tc.method, tc.path, resp.Header.Get("x-pod"))
		}
	}

	t.Run("gRPC: the same denial is status 7", func(t *testing.T) {
		for _, tc := range []struct {
			who, method string
			want        codes.Code
		}{
			// Every gRPC call is a POST, which reviews-viewer's first rule
			// does not allow.
			{"productpage", "/grpc.testing.TestService/EmptyCall", codes.PermissionDenied},
			{"prometheus", "/grpc.testing.TestService/EmptyCall", codes.PermissionDenied},
			// The monitoring rule allows /metrics: the call reaches the
			// server, which has no such method.
			{"prometheus", "/metrics", codes.Unimplemented},
		} {
			conn, err := grpc.NewClient(e.source(tc.who, 9090), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = conn.Invoke(ctx, tc.method, &testgrpc.Empty{}, &testgrpc.Empty{})
			cancel()
			conn.Close()
			st := grpcstatus.Convert(err)
			if st.Code() != tc.want {
				t.Errorf("%s %s: %v, want %v", tc.who, tc.method, err, tc.want)
			}
			if tc.want == codes.PermissionDenied && st.Message() != "RBAC: access denied" {
				t.Errorf("%s %s: message %q", tc.who, tc.method, st.Message())
			}
		}
	})

	t.Run("TCP: the stream is closed after the CONNECT", func(t *testing.T) {
		before := e.pods["reviews-v1"].tcpBytes.Load() + e.pods["reviews-v2"].tcpBytes.Load()
		deniedBefore := sumMetric(scrape(t, e.metricsURL()), "envoy_tcp_rbac_denied", map[string]string{"prefix": "tcp."})
		for _, who := range []string{"productpage", "prometheus"} {
			conn, err := net.DialTimeout("tcp", e.source(who, 9300), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write([]byte("hello"))
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, conn)
			conn.Close()
			// Closed: a FIN, or a reset when the stand-in closed with "hello" unread.
			if n != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
				t.Errorf("%s: read %d bytes, %v; want a closed stream", who, n, err)
			}
		}
		if after := e.pods["reviews-v1"].tcpBytes.Load() + e.pods["reviews-v2"].tcpBytes.Load(); after != before {
			t.Errorf("the TCP backend received %d bytes", after-before)
		}
		// The first filter (deny-admin, turned into "deny any" for TCP)
		// decides; each connection is counted once.
		if d := sumMetric(scrape(t, e.metricsURL()), "envoy_tcp_rbac_denied", map[string]string{"prefix": "tcp.", "policy": "ns[default]-policy[deny-admin]-rule[0]"}) - deniedBefore; d != 2 {
			t.Errorf("tcp denials counted: %v, want 2", d)
		}
	})

	t.Run("decisions are counted per policy", func(t *testing.T) {
		fams := scrape(t, e.metricsURL())
		denied := sumMetric(fams, "envoy_http_rbac_denied", map[string]string{"policy": "ns[default]-policy[deny-admin]-rule[0]"})
		allowed := sumMetric(fams, "envoy_http_rbac_allowed", map[string]string{"policy": "ns[default]-policy[reviews-viewer]-rule[0]"})
		// deny-admin matched /admin, /admin/users, /administrator,
		// /api/../admin for productpage, and /admin for ratings and
		// prometheus; rule[0] allowed productpage's 4 GETs.
		if denied != 6 || allowed != 4 {
			t.Errorf("deny-admin denied %v (want 6), reviews-viewer rule[0] allowed %v (want 4)", denied, allowed)
		}
	})
}

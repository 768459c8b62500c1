package live

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaypointUnderIstiod is the waypoint as a user meets it: a Gateway of class
// istio-waypoint, a Service that uses it with two workloads, a VirtualService split and an
// AuthorizationPolicy, all through the API server; the waypoint's token from the TokenRequest
// API, its certificate from istiod's CA, its config from istiod over TLS; every push ACKed;
// traffic that follows the split and the policy; a policy edit in force within 2 s while
// requests keep flowing, none of them failing.
func TestWaypointUnderIstiod(t *testing.T) {
	w := newWorld(t, 2, "bookinfo", nil)
	v1 := w.workload("reviews-v1", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v1"}, 9080)
	v2 := w.workload("reviews-v2", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v2"}, 9080)
	w.apply(`
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: reviews}
  ports:
  - name: http
    port: 9080
---
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: {{NS}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`)
	policy := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: reviews-viewers
  namespace: {{NS}}
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: reviews
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [%s]
    to:
    - operation:
        methods: [GET]
`
	w.apply(fmt.Sprintf(policy, `"cluster.local/ns/bookinfo/sa/productpage"`))
	url := "http://" + w.serviceVIP("reviews") + ":9080/reviews/0"

	// The policy is in force once another identity is refused.
	w.eventually(30*time.Second, "the policy in force", func() error {
		code, _, err := w.call("productpage", "GET", url, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("productpage GET: %d %v", code, err)
		}
		if code, _, err := w.call("ratings", "GET", url, nil); err != nil || code != 403 {
			return fmt.Errorf("ratings GET: %d %v", code, err)
		}
		return nil
	})
	w.synced()

	t.Run("acked", func(t *testing.T) {
		s, ok, err := env.cluster.ProxySync(context.Background(), w.proxyID())
		if err != nil || !ok {
			t.Fatalf("syncz: %v %v", ok, err)
		}
		for _, typ := range []string{"Listener", "Cluster", "ClusterLoadAssignment"} {
			found := false
			for url, r := range s.Resources {
				if strings.HasSuffix(url, "."+typ) {
					found = true
					if r.Sent == "" || r.Sent != r.Acked || r.LastError != "" {
						t.Errorf("%s: sent %q acked %q error %q", typ, r.Sent, r.Acked, r.LastError)
					}
				}
			}
			if !found {
				t.Errorf("istiod pushed no %s", typ)
			}
		}
		if s.IstioVersion == "" {
			t.Errorf("istiod sees no ISTIO_VERSION from the waypoint")
		}
		if n := w.metric("envoy_listener_manager_lds_update_rejected") + w.metric("envoy_cluster_manager_cds_update_rejected") +
			w.metric("waypoint_xds_update_rejected_total"); n != 0 {
			t.Errorf("the waypoint counts %v refused pushes", n)
		}
		if w.metric("envoy_listener_manager_lds_update_success") == 0 {
			t.Errorf("no listener push counted as accepted")
		}
	})

	t.Run("identity-from-istiod-ca", func(t *testing.T) {
		conn, err := tls.Dial("tcp", net.JoinHostPort(w.waypointIP, "15008"), &tls.Config{
			InsecureSkipVerify: true, NextProtos: []string{"h2"}, Certificates: w.source("productpage").tls.Certificates})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		chain := conn.ConnectionState().PeerCertificates
		leaf := chain[0]
		want := "spiffe://cluster.local/ns/bookinfo/sa/waypoint"
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			t.Errorf("the waypoint presents %v, want %s", leaf.URIs, want)
		}
		if err := leaf.CheckSignatureFrom(w.meshRoot(t)); err != nil {
			t.Errorf("the waypoint's certificate is not signed by istiod's CA (the mesh root): %v", err)
		}
		if leaf.PublicKeyAlgorithm.String() != "ECDSA" {
			t.Errorf("key %v: not the waypoint's own CSR", leaf.PublicKeyAlgorithm)
		}
	})

	t.Run("split", func(t *testing.T) {
		const n = 400
		got := map[string]int{}
		for i := 0; i < n; i++ {
			code, r, err := w.call("productpage", "GET", url, nil)
			if err != nil || code != 200 {
				t.Fatalf("request %d: %d %v", i, code, err)
			}
			got[r.Pod]++
		}
		// 80/20 of 400: 320 expected, a standard deviation of 8; 5 of them either side.
		if got["reviews-v1"] < 280 || got["reviews-v1"] > 360 || got["reviews-v1"]+got["reviews-v2"] != n {
			t.Errorf("split %v, want about 320/80", got)
		}
		t.Logf("80/20 split: %v", got)
	})

	t.Run("policy", func(t *testing.T) {
		for _, c := range []struct {
			sa, method string
			want       int
		}{
			{"productpage", "GET", 200},
			{"productpage", "POST", 403},
			{"ratings", "GET", 403},
			{"ratings", "POST", 403},
		} {
			code, _, err := w.call(c.sa, c.method, url, nil)
			if err != nil || code != c.want {
				t.Errorf("%s %s: %d %v, want %d", c.sa, c.method, code, err, c.want)
			}
		}
	})

	t.Run("policy-edit", func(t *testing.T) {
		// Four clients of productpage keep calling while the policy changes to let ratings in.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var sent, failed atomic.Int64
		var firstFailure atomic.Value
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, err := w.call("productpage", "GET", url, nil)
					sent.Add(1)
					if err != nil || code != 200 {
						failed.Add(1)
						firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		applied := time.Now()
		w.apply(fmt.Sprintf(policy, `"cluster.local/ns/bookinfo/sa/productpage", "cluster.local/ns/bookinfo/sa/ratings"`))
		var took time.Duration
		w.eventually(2*time.Second, "the edited policy in force", func() error {
			code, _, err := w.call("ratings", "GET", url, nil)
			if err != nil || code != 200 {
				return fmt.Errorf("ratings GET: %d %v", code, err)
			}
			took = time.Since(applied)
			return nil
		})
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("the edit took effect %v after the API server took it; %d requests meanwhile, %d failed", took.Round(time.Millisecond), sent.Load(), failed.Load())
		if failed.Load() != 0 {
			t.Errorf("%d of %d requests failed during the edit (first: %v)", failed.Load(), sent.Load(), firstFailure.Load())
		}
		w.synced()
	})
	if v1.hits.Load() == 0 || v2.hits.Load() == 0 {
		t.Errorf("hits: v1 %d, v2 %d", v1.hits.Load(), v2.hits.Load())
	}
}

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcstatus "google.golang.org/grpc/status"
)

// collector is an OTLP gRPC trace receiver: it keeps every span it is
// sent.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// waitSpans waits until match has found n spans, and returns them.
func (c *collector) waitSpans(t *testing.T, n int, match func(*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []*tracepb.Span
		c.mu.Lock()
		for _, s := range c.spans {
			if match(s) {
				got = append(got, s)
			}
		}
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching spans after 15 s, want %d", len(got), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startCollector(t *testing.T, addr string) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	s := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(s, c)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return c
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		}
	}
	return m
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	return getResp(t, &http.Client{Timeout: 10 * time.Second}, url, header...)
}

// Metrics, traces and access logs of one waypoint, on 127.0.61.0/24.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	e := newReviewsEnv(t, 61, reviewsOptions{AccessLogDir: logs, Tracing: 100, NoTCPRBAC: true,
		Sources: []string{"productpage/9080", "ratings/9080", "productpage/9090", "productpage/9300"}})
	otel := startCollector(t, e.ip(20)+":4317")
	web := "http://" + e.source("productpage", 9080)

	t.Run("metrics after fortio equal what the client saw", func(t *testing.T) {
		before := scrape(t, e.metricsURL())
		ok := fortioLoad(t, "-c", "4", "-n", "200", "-qps", "0", web+"/reviews/1")
		denied := fortioLoad(t, "-c", "2", "-n", "50", "-qps", "0", "http://"+e.source("ratings", 9080)+"/reviews/1")
		// A request is counted once its response is written: the last
		// ones may be counted a moment after fortio has them.
		after := scrapeUntil(t, e.metricsURL(), func(f map[string]*dto.MetricFamily) bool {
			return sumMetric(f, "istio_requests_total", map[string]string{"reporter": "waypoint"})-
				sumMetric(before, "istio_requests_total", map[string]string{"reporter": "waypoint"}) >= 250
		})
		delta := func(labels map[string]string) float64 {
			return sumMetric(after, "istio_requests_total", labels) - sumMetric(before, "istio_requests_total", labels)
		}
		src := map[string]string{"reporter": "waypoint", "source_workload": "productpage-v1"}
		for code, n := range ok.RetCodes {
			l := map[string]string{"response_code": code}
			for k, v := range src {
				l[k] = v
			}
			if got := delta(l); got != float64(n) {
				t.Errorf("productpage %s: istio_requests_total rose by %v, fortio saw %d", code, got, n)
			}
		}
		if ok.RetCodes["200"] != 200 {
			t.Errorf("fortio saw %v, want 200 OK", ok.RetCodes)
		}
		if got := delta(map[string]string{"source_workload": "ratings-v1", "response_code": "403"}); got != float64(denied.RetCodes["403"]) || got != 50 {
			t.Errorf("ratings 403: rose by %v, fortio saw %v", got, denied.RetCodes)
		}
		// The labels, as Istio fills them: the source from the peer's
		// certificate and its ztunnel's baggage, the destination from the
		// endpoint's and the cluster's istio metadata.
		sets := labelsOf(after, "istio_requests_total", map[string]string{"source_workload": "productpage-v1", "response_code": "200"})
		if len(sets) != 2 {
			t.Fatalf("%d label sets for productpage's 200s, want one per reviews pod: %v", len(sets), sets)
		}
		for _, l := range sets {
			want := map[string]string{
				"source_workload_namespace": "default", "source_principal": "spiffe://cluster.local/ns/default/sa/productpage",
				"source_app": "productpage", "source_version": "v1", "source_canonical_service": "productpage",
				"source_canonical_revision": "v1", "source_cluster": "Kubernetes",
				"destination_workload_namespace": "default", "destination_principal": "spiffe://cluster.local/ns/default/sa/reviews",
				"destination_app": "reviews", "destination_service": "reviews.mesh.local", "destination_service_name": "reviews.mesh.local",
				"destination_service_namespace": "default", "destination_canonical_service": "reviews", "destination_cluster": "Kubernetes",
				"request_protocol": "http", "connection_security_policy": "mutual_tls", "response_flags": "-", "grpc_response_status": "",
			}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("%s = %q, want %q", k, l[k], v)
				}
			}
			if w := l["destination_workload"]; w != "reviews-v1" && w != "reviews-v2" || l["destination_version"] != strings.TrimPrefix(w, "reviews-") {
				t.Errorf("destination workload %q version %q", w, l["destination_version"])
			}
		}
		if n := sumMetric(after, "istio_request_duration_milliseconds", src) - sumMetric(before, "istio_request_duration_milliseconds", src); n != 200 {
			t.Errorf("duration histogram counted %v requests, want 200", n)
		}
		if n := sumMetric(after, "envoy_cluster_upstream_rq_total", map[string]string{"cluster_name": "reviews"}) -
			sumMetric(before, "envoy_cluster_upstream_rq_total", map[string]string{"cluster_name": "reviews"}); n != 200 {
			t.Errorf("envoy_cluster_upstream_rq_total{reviews} rose by %v, want 200", n)
		}
		// The admin serves the same registry.
		if fams := scrape(t, e.adminURL()+"/stats/prometheus"); fams["istio_requests_total"] == nil {
			t.Error("the admin's /stats/prometheus has no istio_requests_total")
		}
	})

	t.Run("gRPC is labelled grpc with its status", func(t *testing.T) {
		before := scrape(t, e.metricsURL())
		conn, err := grpc.NewClient(e.source("productpage", 9090), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		err = conn.Invoke(context.Background(), "/grpc.testing.TestService/EmptyCall", &testgrpc.Empty{}, &testgrpc.Empty{})
		if grpcstatus.Code(err) != codes.PermissionDenied {
			t.Fatalf("EmptyCall: %v, want PermissionDenied", err)
		}
		l := map[string]string{"request_protocol": "grpc", "response_code": "200", "grpc_response_status": "7", "source_workload": "productpage-v1"}
		after := scrapeUntil(t, e.metricsURL(), func(f map[string]*dto.MetricFamily) bool {
			return sumMetric(f, "istio_requests_total", l) > sumMetric(before, "istio_requests_total", l)
		})
		if d := sumMetric(after, "istio_requests_total", l) - sumMetric(before, "istio_requests_total", l); d != 1 {
			t.Errorf("grpc denial counted %v times, want 1", d)
		}
	})

	t.Run("TCP metrics", func(t *testing.T) {
		before := scrape(t, e.metricsURL())
		c, err := net.Dial("tcp", e.source("productpage", 9300))
		if err != nil {
			t.Fatal(err)
		}
		payload := strings.Repeat("x", 1000)
		c.Write([]byte(payload))
		buf := make([]byte, len(payload))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		c.Close()
		l := map[string]string{"request_protocol": "tcp", "source_workload": "productpage-v1", "destination_service": "reviews.mesh.local"}
		deadline := time.Now().Add(10 * time.Second)
		for {
			after := scrape(t, e.metricsURL())
			d := func(name string) float64 { return sumMetric(after, name, l) - sumMetric(before, name, l) }
			if d("istio_tcp_connections_closed_total") == 1 {
				if d("istio_tcp_connections_opened_total") != 1 || d("istio_tcp_sent_bytes_total") != 1000 || d("istio_tcp_received_bytes_total") != 1000 {
					t.Errorf("opened %v, sent %v, received %v; want 1, 1000, 1000", d("istio_tcp_connections_opened_total"),
						d("istio_tcp_sent_bytes_total"), d("istio_tcp_received_bytes_total"))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the TCP connection was never counted closed")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("traceparent in: same trace upstream, the waypoint's span as parent, spans exported", func(t *testing.T) {
		const tid, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		resp, _ := get(t, web+"/reviews/traced", "traceparent", "00-"+tid+"-"+parent+"-01", "x-request-id", "traced-1")
		seen := resp.Header.Get("x-seen-traceparent")
		if len(seen) != 55 || seen[3:35] != tid || seen[36:52] == parent || !strings.HasSuffix(seen, "-01") {
			t.Fatalf("backend saw traceparent %q; want trace %s, a waypoint span as parent, sampled", seen, tid)
		}
		upstreamParent := seen[36:52]
		isTrace := func(s *tracepb.Span) bool { return hex.EncodeToString(s.GetTraceId()) == tid }
		spans := otel.waitSpans(t, 2, isTrace)
		var server, client *tracepb.Span
		for _, s := range spans {
			switch s.GetKind() {
			case tracepb.Span_SPAN_KIND_SERVER:
				server = s
			case tracepb.Span_SPAN_KIND_CLIENT:
				client = s
			}
		}
		if server == nil || client == nil {
			t.Fatalf("spans: %v", spans)
		}
		if hex.EncodeToString(server.GetParentSpanId()) != parent || hex.EncodeToString(client.GetParentSpanId()) != hex.EncodeToString(server.GetSpanId()) ||
			hex.EncodeToString(client.GetSpanId()) != upstreamParent {
			t.Errorf("span tree: server %x (parent %x), client %x (parent %x), upstream parent %s",
				server.GetSpanId(), server.GetParentSpanId(), client.GetSpanId(), client.GetParentSpanId(), upstreamParent)
		}
		a := attrs(server)
		for k, v := range map[string]string{
			"istio.canonical_service": "reviews", "upstream_cluster": "reviews", "http.method": "GET",
			"http.status_code": "200", "response_flags": "-", "istio.peer_principal": "spiffe://cluster.local/ns/default/sa/productpage",
			"guid:x-request-id": "traced-1", "istio.destination_app": "reviews",
		} {
			if a[k] != v {
				t.Errorf("server span %s = %q, want %q", k, a[k], v)
			}
		}
		if !strings.HasSuffix(a["http.url"], "/reviews/traced") {
			t.Errorf("http.url %q", a["http.url"])
		}
		if attrs(client)["upstream_cluster"] != "reviews" {
			t.Errorf("client span attributes %v", attrs(client))
		}
	})

	t.Run("B3 in, W3C out", func(t *testing.T) {
		const tid, parent = "a3ce929d0e0e47364bf92f3577b34da6", "b7ad6b7169203331"
		resp, _ := get(t, web+"/reviews/b3", "x-b3-traceid", tid, "x-b3-spanid", parent, "x-b3-sampled", "1")
		seen := resp.Header.Get("x-seen-traceparent")
		if len(seen) != 55 || seen[3:35] != tid || !strings.HasSuffix(seen, "-01") {
			t.Fatalf("backend saw traceparent %q, want trace %s sampled", seen, tid)
		}
		s := otel.waitSpans(t, 1, func(s *tracepb.Span) bool {
			return hex.EncodeToString(s.GetTraceId()) == tid && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER
		})
		if hex.EncodeToString(s[0].GetParentSpanId()) != parent {
			t.Errorf("server span parent %x, want the B3 span %s", s[0].GetParentSpanId(), parent)
		}
	})

	t.Run("access logs: a line per request, text and JSON, with Envoy's flags", func(t *testing.T) {
		cases := []struct {
			id, path string
			header   []string
			code     int
			flags    string
		}{
			{"log-ok", "/reviews/1", nil, 200, "-"},
			{"log-nr", "/reviews/1", []string{"x-no-route", "1"}, 404, "NR"},
			{"log-uh", "/reviews/empty", nil, 503, "UH"},
			{"log-uf", "/reviews/dead", nil, 503, "UF"},
			{"log-ut", "/reviews/slow", nil, 504, "UT"},
		}
		for _, c := range cases {
			resp, _ := get(t, web+c.path, append([]string{"x-request-id", c.id}, c.header...)...)
			if resp.StatusCode != c.code {
				t.Errorf("%s: %d, want %d", c.id, resp.StatusCode, c.code)
			}
		}
		// A downstream that goes away: an HTTP/2 request reset while the
		// upstream takes its time.
		h2 := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", web+"/reviews/hang", nil)
		req.Header.Set("x-request-id", "log-dc")
		if resp, err := h2.Do(req); err == nil {
			resp.Body.Close()
			t.Error("the reset request got an answer")
		}
		cancel()
		cases = append(cases, struct {
			id, path string
			header   []string
			code     int
			flags    string
		}{"log-dc", "/reviews/hang", nil, 0, "DC"})

		entries := waitLogLines(t, filepath.Join(logs, "access.json"), len(cases), func(l string) bool { return strings.Contains(l, `"log-`) })
		for _, c := range cases {
			var found []map[string]any
			for _, e := range entries {
				if e["id"] == c.id {
					found = append(found, e)
				}
			}
			if len(found) != 1 {
				t.Errorf("%s: %d JSON lines, want 1", c.id, len(found))
				continue
			}
			got := found[0]
			flags, _ := got["flags"].(string)
			if (c.code != 0 && got["code"] != float64(c.code)) || !strings.Contains(flags+",", c.flags+",") && !(c.flags == "-" && got["flags"] == nil) {
				t.Errorf("%s: logged %v", c.id, got)
			}
			if got["peer"] != "spiffe://cluster.local/ns/default/sa/productpage" {
				t.Errorf("%s: peer %v", c.id, got["peer"])
			}
		}
		text := readLines(t, filepath.Join(logs, "access.log"))
		for _, c := range cases {
			var lines []string
			for _, l := range text {
				if strings.Contains(l, `"`+c.id+`"`) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Errorf("%s: %d text lines, want 1", c.id, len(lines))
				continue
			}
			// [time] "GET path HTTP/x" code flags details ...
			f := strings.Fields(lines[0][strings.Index(lines[0], `" `)+2:])
			if !strings.Contains(f[1]+",", c.flags+",") || (c.code != 0 && f[0] != fmt.Sprint(c.code)) {
				t.Errorf("%s: text line %q", c.id, lines[0])
			}
		}
		if ok := text[0]; !strings.HasPrefix(ok, "[") {
			t.Errorf("text line %q is not Istio's format", ok)
		}
	})

	t.Run("TCP access log", func(t *testing.T) {
		lines := waitLogText(t, filepath.Join(logs, "tcp.log"), func(l string) bool { return strings.Contains(l, "1000 1000") })
		if len(lines) != 1 {
			t.Errorf("TCP log lines with 1000 bytes each way: %q", lines)
		}
	})
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitLogText waits for at least one line matching match and returns them
// all.
func waitLogText(t *testing.T, path string, match func(string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		for _, l := range readLines(t, path) {
			if match(l) {
				got = append(got, l)
			}
		}
		if len(got) > 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogLines waits for n JSON lines matching match and returns them
// decoded.
func waitLogLines(t *testing.T, path string, n int, match func(string) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []map[string]any
		for _, l := range readLines(t, path) {
			if !match(l) {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: a line is not JSON: %q: %v", path, l, err)
			}
			got = append(got, m)
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeUntil scrapes url until done says the figures are in (or 10 s
// pass) and returns the last scrape.
func scrapeUntil(t *testing.T, url string, done func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := scrape(t, url)
		if done(f) || time.Now().After(deadline) {
			return f
		}
		time.Sleep(50 * time.Millisecond)
	}
}

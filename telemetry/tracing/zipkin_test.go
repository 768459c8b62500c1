package tracing

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

func decodeJSON(t *testing.T, js string) (*Config, error) {
	t.Helper()
	var pb hcmv3.HttpConnectionManager_Tracing
	if err := protojson.Unmarshal([]byte(js), &pb); err != nil {
		t.Fatal(err)
	}
	return Decode(&pb)
}

const zipkinProvider = `{"provider":{"name":"envoy.tracers.zipkin","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",`

func TestDecodeZipkin(t *testing.T) {
	// istiod's two forms: collector_service (proxies of 1.29 and later), the legacy fields.
	c, err := decodeJSON(t, zipkinProvider+`"collectorEndpointVersion":"HTTP_JSON","traceId128bit":true,"sharedSpanContext":false,
		"collectorService":{"httpUri":{"uri":"http://zipkin.istio-system.svc.cluster.local/api/v2/spans","cluster":"outbound|9411||zipkin","timeout":"2s"},
		"requestHeadersToAdd":[{"header":{"key":"x-tenant","value":"a"}}]}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	z := c.Zipkin
	if c.Cluster != "outbound|9411||zipkin" || z == nil || z.Host != "zipkin.istio-system.svc.cluster.local" || z.Path != "/api/v2/spans" ||
		z.Timeout != 2*time.Second || !z.TraceID128 || z.W3C || len(z.Headers) != 1 || c.ClusterField != "provider.typed_config.collector_service.http_uri.cluster" {
		t.Errorf("collector_service: %+v %+v", c, z)
	}
	c, err = decodeJSON(t, zipkinProvider+`"collectorEndpointVersion":"HTTP_JSON","sharedSpanContext":false,"traceContextOption":"USE_B3_WITH_W3C_PROPAGATION",
		"collectorCluster":"outbound|9411||zipkin","collectorEndpoint":"/api/v2/spans","collectorHostname":"zipkin.x"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if z := c.Zipkin; c.Cluster != "outbound|9411||zipkin" || z.Host != "zipkin.x" || z.Path != "/api/v2/spans" || z.TraceID128 || !z.W3C || z.Timeout != 5*time.Second {
		t.Errorf("legacy: %+v %+v", c, z)
	}
	for _, bad := range []struct{ js, want string }{
		{`"collectorEndpointVersion":"HTTP_PROTO","sharedSpanContext":false,"collectorCluster":"c","collectorEndpoint":"/"}}}`, "collector_endpoint_version: HTTP_PROTO is not supported"},
		{`"collectorEndpointVersion":"HTTP_JSON","collectorCluster":"c","collectorEndpoint":"/"}}}`, "shared_span_context: only false"},
		{`"collectorEndpointVersion":"HTTP_JSON","sharedSpanContext":false,"collectorEndpoint":"/"}}}`, "collector_cluster: required"},
		{`"collectorEndpointVersion":"HTTP_JSON","sharedSpanContext":false,"collectorCluster":"c","splitSpansForRequest":true,"collectorEndpoint":"/"}}}`, "split_spans_for_request"},
	} {
		if _, err := decodeJSON(t, zipkinProvider+bad.js); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.js, err, bad.want)
		}
	}
}

// TestZipkinExport: spans of a sampled request reach the collector as Zipkin v2 JSON, over
// the connection Dial makes, and B3 goes upstream.
func TestZipkinExport(t *testing.T) {
	var mu sync.Mutex
	var got []zipkinSpan
	var host, ctype, tenant string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []zipkinSpan
		if r.URL.Path != "/api/v2/spans" || json.NewDecoder(r.Body).Decode(&spans) != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		got, host, ctype, tenant = append(got, spans...), r.Host, r.Header.Get("Content-Type"), r.Header.Get("X-Tenant")
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer srv.Close()
	tr := &Tracers{LocalCluster: "waypoint.ns", Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
		if cluster != "zipkin-cluster" {
			t.Errorf("dialed %q", cluster)
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}
	c := &Config{RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256, Cluster: "zipkin-cluster",
		Tags:   []Tag{{Name: "lit", Literal: "v"}},
		Zipkin: &Zipkin{HTTPService: HTTPService{Path: "/api/v2/spans", Host: "zipkin.istio-system", Timeout: time.Second, Headers: [][2]string{{"x-tenant", "a"}}}}}
	req := &l7.Request{Method: "GET", Path: []byte("/z"), Authority: []byte("reviews:9080")}
	req.Header.Add("x-b3-traceid", "a3ce929d0e0e4736")
	req.Header.Add("x-b3-spanid", "00f067aa0ba902b7")
	req.Header.Add("x-b3-sampled", "1")
	s := filters.NewStream(context.Background(), req, &filters.Downstream{}, nil)
	var sp Span
	tr.Start(c, s, &sp)
	if !sp.Sampled() {
		t.Fatal("a sampled parent was not sampled")
	}
	up := &l7.Request{}
	ureq := &filters.UpstreamRequest{Request: up, Cluster: "reviews"}
	sp.StartAttempt(s, ureq)
	sp.EndAttempt(s, ureq, &l7.Response{Status: 200}, nil)
	sp.End(s, &accesslog.Record{Code: 200})
	if v := up.Header.GetString("x-b3-traceid"); v != "a3ce929d0e0e4736" {
		t.Errorf("x-b3-traceid %q", v)
	}
	if v := up.Header.GetString("x-b3-parentspanid"); v != sp.sc.SpanID().String() {
		t.Errorf("x-b3-parentspanid %q, want the server span %s", v, sp.sc.SpanID())
	}
	if v := up.Header.GetString("x-b3-sampled"); v != "1" || up.Header.Has("traceparent") {
		t.Errorf("x-b3-sampled %q, traceparent %v", v, up.Header.Has("traceparent"))
	}
	tr.Shutdown(context.Background()) // flushes the batch
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || host != "zipkin.istio-system" || ctype != "application/json" || tenant != "a" {
		t.Fatalf("%d spans, host %q, content type %q, tenant %q", len(got), host, ctype, tenant)
	}
	var server, client zipkinSpan
	for _, z := range got {
		if z.Kind == "SERVER" {
			server = z
		} else {
			client = z
		}
	}
	if server.TraceID != "a3ce929d0e0e4736" || server.ParentID != "00f067aa0ba902b7" || server.LocalEndpoint.ServiceName != "waypoint.ns" ||
		server.Tags["http.url"] != "reviews:9080/z" || server.Tags["lit"] != "v" || server.Name != "reviews:9080/*" || server.Timestamp == 0 {
		t.Errorf("server span %+v", server)
	}
	if client.Kind != "CLIENT" || client.ParentID != server.ID || client.Tags["http.status_code"] != "200" {
		t.Errorf("client span %+v", client)
	}
}

func TestZipkin64BitTraces(t *testing.T) {
	c := &Config{RandomSampling: 0, OverallSampling: 100, Zipkin: &Zipkin{}}
	var tr Tracers
	s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/")}, &filters.Downstream{}, nil)
	var sp Span
	tr.Start(c, s, &sp)
	up := &l7.Request{}
	sp.StartAttempt(s, &filters.UpstreamRequest{Request: up})
	if v := up.Header.GetString("x-b3-traceid"); len(v) != 16 || up.Header.GetString("x-b3-sampled") != "0" || up.Header.Has("x-b3-parentspanid") {
		t.Errorf("x-b3-traceid %q, sampled %q", v, up.Header.GetString("x-b3-sampled"))
	}
	if tid, _ := (ids64{}).NewIDs(context.Background()); zipkinTraceID(tid) == "" || len(zipkinTraceID(tid)) != 16 {
		t.Errorf("ids64: %s", tid)
	}
}

// TestIdleProviderRetired: a config that replaced the tracing of another
// leaves no provider behind; the retired one exports what it batched.
func TestIdleProviderRetired(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []zipkinSpan
		json.NewDecoder(r.Body).Decode(&spans)
		mu.Lock()
		paths[r.URL.Path] += len(spans)
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer srv.Close()
	tr := &Tracers{IdleTimeout: time.Nanosecond, Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}
	trace := func(path string) {
		c := &Config{RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256, Cluster: "zipkin",
			Zipkin: &Zipkin{HTTPService: HTTPService{Path: path, Host: "zipkin", Timeout: time.Second}, TraceID128: true}}
		s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/"), Authority: []byte("a")}, &filters.Downstream{}, nil)
		var sp Span
		tr.Start(c, s, &sp)
		sp.End(s, &accesslog.Record{Code: 200})
	}
	trace("/old")
	time.Sleep(time.Millisecond)
	trace("/new")
	tr.mu.Lock()
	n := len(tr.providers)
	tr.mu.Unlock()
	if n != 1 {
		t.Errorf("%d providers after the tracing changed, want 1", n)
	}
	tr.retiring.Wait()
	mu.Lock()
	if paths["/old"] != 1 {
		t.Errorf("the retired provider exported %d spans, want 1", paths["/old"])
	}
	mu.Unlock()
	tr.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if paths["/new"] != 1 {
		t.Errorf("the provider in use exported %d spans at shutdown, want 1", paths["/new"])
	}
}

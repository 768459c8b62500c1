package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

func TestDecodeOTLPHTTP(t *testing.T) {
	// istiod writes the URI without a scheme.
	c, err := decodeJSON(t, `{"provider":{"name":"envoy.tracers.opentelemetry","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
		"httpService":{"httpUri":{"uri":"otel-collector.istio-system.svc.cluster.local/v1/traces","cluster":"outbound|4318||otel","timeout":"3s"},
		"requestHeadersToAdd":[{"header":{"key":"x-tenant","value":"a"}}]},"serviceName":"waypoint.ns"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HTTP; h == nil || c.Cluster != "outbound|4318||otel" || h.Host != "otel-collector.istio-system.svc.cluster.local" || h.Path != "/v1/traces" ||
		h.Timeout != 3*time.Second || len(h.Headers) != 1 || c.ServiceName != "waypoint.ns" {
		t.Errorf("decoded %+v %+v", c, c.HTTP)
	}
	if _, err := decodeJSON(t, `{"provider":{"name":"envoy.tracers.opentelemetry","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
		"httpService":{"httpUri":{"uri":"http:///v1/traces","cluster":"c"}}}}}`); err == nil {
		t.Error("a URI without a host was accepted")
	}
}

// TestOTLPHTTPExport: a sampled request's spans are POSTed as OTLP protobuf over the
// connection Dial makes, with the URI's host and path.
func TestOTLPHTTPExport(t *testing.T) {
	var mu sync.Mutex
	var got []*collectorpb.ExportTraceServiceRequest
	var host, path, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		got, host, path, ctype = append(got, &req), r.Host, r.URL.Path, r.Header.Get("Content-Type")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	defer srv.Close()
	tr := &Tracers{Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
		if cluster != "otel" {
			t.Errorf("dialed %q", cluster)
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}
	c := &Config{RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256, Cluster: "otel", ServiceName: "waypoint.ns",
		HTTP: &HTTPService{Host: "otel-collector.istio-system", Path: "/v1/traces", Timeout: time.Second}}
	s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/o"), Authority: []byte("reviews")}, &filters.Downstream{}, nil)
	var sp Span
	tr.Start(c, s, &sp)
	up := &l7.Request{}
	sp.StartAttempt(s, &filters.UpstreamRequest{Request: up})
	sp.EndAttempt(s, &filters.UpstreamRequest{Request: up}, &l7.Response{Status: 200}, nil)
	sp.End(s, &accesslog.Record{Code: 200})
	if !up.Header.Has("traceparent") || up.Header.Has("x-b3-traceid") {
		t.Error("OpenTelemetry propagates W3C only")
	}
	tr.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, r := range got {
		for _, rs := range r.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				n += len(ss.GetSpans())
			}
		}
	}
	if n != 2 || host != "otel-collector.istio-system" || path != "/v1/traces" || ctype != "application/x-protobuf" {
		t.Errorf("%d spans, host %q, path %q, content type %q", n, host, path, ctype)
	}
}

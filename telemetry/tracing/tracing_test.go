package tracing

import (
	"context"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"

	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3" // OpenTelemetryConfig in Any
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExtract(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		name    string
		h       []string
		ok      bool
		sampled bool
		trace   string
	}{
		{"w3c sampled", []string{"traceparent", "00-" + tid + "-" + sid + "-01"}, true, true, tid},
		{"w3c unsampled", []string{"traceparent", "00-" + tid + "-" + sid + "-00"}, true, false, tid},
		{"w3c future version with more fields", []string{"traceparent", "01-" + tid + "-" + sid + "-01-xyz"}, true, true, tid},
		{"w3c version 00 with more fields", []string{"traceparent", "00-" + tid + "-" + sid + "-01-xyz"}, false, false, ""},
		{"w3c upper case", []string{"traceparent", "00-" + strings.ToUpper(tid) + "-" + sid + "-01"}, false, false, ""},
		{"w3c zero trace id", []string{"traceparent", "00-00000000000000000000000000000000-" + sid + "-01"}, false, false, ""},
		{"w3c wins over b3", []string{"traceparent", "00-" + tid + "-" + sid + "-01", "x-b3-traceid", "1111111111111111", "x-b3-spanid", sid}, true, true, tid},
		{"b3 multi", []string{"x-b3-traceid", tid, "x-b3-spanid", sid, "x-b3-sampled", "1"}, true, true, tid},
		{"b3 multi 64-bit", []string{"x-b3-traceid", "a3ce929d0e0e4736", "x-b3-spanid", sid, "x-b3-sampled", "0"}, true, false, "0000000000000000a3ce929d0e0e4736"},
		{"b3 debug flag", []string{"x-b3-traceid", tid, "x-b3-spanid", sid, "x-b3-flags", "1"}, true, true, tid},
		{"b3 single", []string{"b3", tid + "-" + sid + "-1"}, true, true, tid},
		{"b3 single with parent", []string{"b3", tid + "-" + sid + "-d-" + sid}, true, true, tid},
		{"b3 single deny", []string{"b3", tid + "-" + sid + "-0"}, true, false, tid},
		{"b3 bad span", []string{"x-b3-traceid", tid, "x-b3-spanid", "12"}, false, false, ""},
		{"none", nil, false, false, ""},
	}
	for _, c := range cases {
		var h l7.Header
		for i := 0; i+1 < len(c.h); i += 2 {
			h.Add(c.h[i], c.h[i+1])
		}
		sc, ok := extract(&h)
		if ok != c.ok || (ok && (sc.IsSampled() != c.sampled || sc.TraceID().String() != c.trace)) {
			t.Errorf("%s: ok %v sampled %v trace %s", c.name, ok, sc.IsSampled(), sc.TraceID())
		}
	}
}

func TestUnsampledPropagates(t *testing.T) {
	c := &Config{RandomSampling: 0, OverallSampling: 100}
	var tr Tracers
	req := &l7.Request{Method: "GET", Path: []byte("/"), Authority: []byte("a")}
	req.Header.Add("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736")
	req.Header.Add("x-b3-spanid", "00f067aa0ba902b7")
	req.Header.Add("x-b3-sampled", "0")
	s := filters.NewStream(context.Background(), req, &filters.Downstream{}, nil)
	var sp Span
	tr.Start(c, s, &sp)
	if sp.Sampled() {
		t.Fatal("an unsampled parent was sampled")
	}
	up := &l7.Request{}
	sp.StartAttempt(s, &filters.UpstreamRequest{Request: up})
	sp.EndAttempt(s, &filters.UpstreamRequest{Request: up}, nil, nil)
	v, _ := up.Header.Get("traceparent")
	if !strings.HasPrefix(string(v), "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(string(v), "-00") || strings.Contains(string(v), "00f067aa0ba902b7") {
		t.Errorf("traceparent %q: want the parent's trace, a new span id, not sampled", v)
	}
	// No parent and no sampling: a new trace, still propagated.
	s2 := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/")}, &filters.Downstream{}, nil)
	var sp2 Span
	tr.Start(c, s2, &sp2)
	up2 := &l7.Request{}
	sp2.StartAttempt(s2, &filters.UpstreamRequest{Request: up2})
	if v, _ := up2.Header.Get("traceparent"); len(v) != 55 || string(v[3:35]) != sp2.TraceID() {
		t.Errorf("traceparent %q, trace %s", v, sp2.TraceID())
	}
}

func TestDecode(t *testing.T) {
	var pb hcmv3.HttpConnectionManager_Tracing
	js := `{"randomSampling":{"value":1},"customTags":[{"tag":"istio.canonical_service","literal":{"value":"reviews"}},
		{"tag":"istio.destination_app","value":"%FILTER_STATE(upstream_peer_obj:FIELD:app)%"},
		{"tag":"x","metadata":{"kind":{"request":{}},"metadataKey":{"key":"envoy.filters.http.rbac","path":[{"key":"k"}]}}},
		{"tag":"ua","requestHeader":{"name":"User-Agent","defaultValue":"none"}}],
		"provider":{"name":"envoy.tracers.opentelemetry","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
		"grpcService":{"envoyGrpc":{"clusterName":"outbound|4317||otel"}},"serviceName":"reviews.default"}}}`
	if err := protojson.Unmarshal([]byte(js), &pb); err != nil {
		t.Fatal(err)
	}
	c, err := Decode(&pb)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "outbound|4317||otel" || c.ServiceName != "reviews.default" || c.RandomSampling != 1 || c.OverallSampling != 100 || len(c.Tags) != 3 || c.Tags[2].Header != "user-agent" {
		t.Errorf("decoded %+v", c)
	}
	var bad hcmv3.HttpConnectionManager_Tracing
	protojson.Unmarshal([]byte(`{"provider":{"name":"envoy.tracers.datadog","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.DatadogConfig"}}}`), &bad)
	if _, err := Decode(&bad); err == nil || !strings.Contains(err.Error(), `unsupported tracer "envoy.tracers.datadog"`) {
		t.Errorf("datadog: %v", err)
	}
	if c, err := Decode(&hcmv3.HttpConnectionManager_Tracing{}); c != nil || err != nil {
		t.Errorf("no provider: %v %v", c, err)
	}
}

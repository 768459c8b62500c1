package metrics

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	statspb "istio.io/api/envoy/extensions/stats"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// waypointStats is the stats filter config istiod writes for a waypoint, with overrides.
func waypointStats(ms ...*statspb.MetricConfig) *statspb.PluginConfig {
	return &statspb.PluginConfig{Reporter: statspb.Reporter_SERVER_GATEWAY, DisableHostHeaderFallback: true, Metrics: ms}
}

// TestOverrides: what a Telemetry's metric overrides become in istio.stats (a metric
// disabled: drop; a tag removed: tags_to_remove; ALL_METRICS: no name), recorded for HTTP and
// TCP: a dropped metric has no series, a removed tag is empty (absent, to Prometheus) and
// the series that differ by it only are one.
func TestOverrides(t *testing.T) {
	cases := []struct {
		name string
		cfg  *statspb.PluginConfig
		// series per metric after two requests of different protocols (HTTP, gRPC) and two
		// TCP connections; -1: the metric is absent.
		want map[string]int
		// emptied: labels every series of istio_requests_total has empty.
		emptied []string
	}{
		{"no overrides", waypointStats(), map[string]int{"istio_requests_total": 2, "istio_request_bytes": 2, "istio_tcp_connections_opened_total": 1}, nil},
		{"request_bytes disabled", waypointStats(&statspb.MetricConfig{Name: "request_bytes", Drop: true}),
			map[string]int{"istio_requests_total": 2, "istio_request_bytes": -1, "istio_response_bytes": 2}, nil},
		{"request_protocol removed from requests_total", waypointStats(&statspb.MetricConfig{Name: "requests_total", TagsToRemove: []string{"request_protocol"}}),
			map[string]int{"istio_requests_total": 1, "istio_request_duration_milliseconds": 2}, []string{"request_protocol"}},
		{"all metrics without the source workload", waypointStats(&statspb.MetricConfig{TagsToRemove: []string{"source_workload", "source_app"}}),
			map[string]int{"istio_requests_total": 2, "istio_tcp_sent_bytes_total": 1, "istio_request_messages_total": 1}, []string{"source_workload", "source_app"}},
		{"all metrics disabled", waypointStats(&statspb.MetricConfig{Drop: true}),
			map[string]int{"istio_requests_total": -1, "istio_request_duration_milliseconds": -1, "istio_tcp_connections_opened_total": -1,
				"istio_request_messages_total": -1, "istio_response_messages_total": -1}, nil},
		{"TCP opened disabled, gRPC request messages disabled", waypointStats(&statspb.MetricConfig{Name: "tcp_connections_opened_total", Drop: true},
			&statspb.MetricConfig{Name: "request_messages_total", Drop: true}),
			map[string]int{"istio_tcp_connections_opened_total": -1, "istio_tcp_connections_closed_total": 1, "istio_requests_total": 2,
				"istio_request_messages_total": -1, "istio_response_messages_total": 1}, nil},
	}
	for _, c := range cases {
		ov, err := NewOverrides(c.cfg)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		reg := prometheus.NewRegistry()
		r := New(reg, 100)
		for _, p := range []Protocol{HTTP, GRPC} {
			k := Key{Version: "v1", Protocol: p, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Baggage: baggage,
				Cluster: "reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"), MutualTLS: true, Overrides: ov}
			r.LabelSet(k, reviews).RecordHTTP(200, -1, 0, time.Millisecond, 10, 20)
			if p == GRPC {
				r.LabelSet(k, reviews).RecordMessages("", 3, 4)
			}
		}
		k := Key{Version: "v1", Protocol: TCP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Cluster: "reviews",
			Host: netip.MustParseAddrPort("127.0.60.11:9300"), Overrides: ov}
		for range 2 {
			ls := r.LabelSet(k, reviews)
			ls.TCPOpened()
			ls.TCPClosed(5, 6)
		}
		for name, n := range c.want {
			got := series(t, reg, name)
			switch {
			case n < 0 && len(got) > 0:
				t.Errorf("%s: %s has %d series, want none", c.name, name, len(got))
			case n >= 0 && len(got) != n:
				t.Errorf("%s: %s has %d series, want %d", c.name, name, len(got), n)
			}
		}
		for _, m := range series(t, reg, "istio_request_messages_total") {
			l := labels(m)
			if m.GetCounter().GetValue() != 3 || len(l) != 20 || l["source_workload"] != "" && slices.Contains(c.emptied, "source_workload") {
				t.Errorf("%s: istio_request_messages_total %v with %d labels %v, want 3 with the peers' 20", c.name, m.GetCounter().GetValue(), len(l), l)
			}
		}
		for _, m := range series(t, reg, "istio_requests_total") {
			l := labels(m)
			for _, e := range c.emptied {
				if l[e] != "" {
					t.Errorf("%s: %s=%q, want it removed", c.name, e, l[e])
				}
			}
			if len(c.emptied) == 0 && l["request_protocol"] == "" {
				t.Errorf("%s: request_protocol removed", c.name)
			}
		}
	}
	if ov, err := NewOverrides(waypointStats()); ov != nil || err != nil {
		t.Errorf("no overrides: %v %v, want nil", ov, err)
	}
}

func TestOverridesRefused(t *testing.T) {
	cases := []struct {
		name string
		cfg  *statspb.PluginConfig
		want string
	}{
		{"a tag set by an expression that does not compile", waypointStats(&statspb.MetricConfig{Name: "requests_total",
			Dimensions: map[string]string{"custom_dim": "request.host +"}}),
			`metrics[0].dimensions[custom_dim]: CEL expression "request.host +": ERROR`},
		{"a tag name Prometheus does not take", waypointStats(&statspb.MetricConfig{Name: "requests_total",
			Dimensions: map[string]string{"custom-dim": "request.host"}}),
			`metrics[0].dimensions[custom-dim]: "custom-dim" is not a valid Prometheus label name`},
		{"a custom metric", waypointStats(&statspb.MetricConfig{Name: "my_metric", Drop: true}),
			`metrics[0].name: unknown metric "my_metric" (custom metrics are not supported yet)`},
		{"metric definitions", &statspb.PluginConfig{Reporter: statspb.Reporter_SERVER_GATEWAY, DisableHostHeaderFallback: true,
			Definitions: []*statspb.MetricDefinition{{Name: "x", Value: "1"}}}, "definitions: not supported yet"},
		{"a sidecar's reporter", &statspb.PluginConfig{DisableHostHeaderFallback: true}, "reporter: UNSPECIFIED is not supported"},
		{"host header fallback", &statspb.PluginConfig{Reporter: statspb.Reporter_SERVER_GATEWAY}, "disable_host_header_fallback: false is not supported"},
		{"TCP reporting period", &statspb.PluginConfig{Reporter: statspb.Reporter_SERVER_GATEWAY, DisableHostHeaderFallback: true,
			TcpReportingDuration: durationpb.New(time.Second)}, "tcp_reporting_duration: not supported yet"},
	}
	for _, c := range cases {
		if _, err := NewOverrides(c.cfg); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// As a TypedStruct's value.
	st, _ := structpb.NewStruct(map[string]any{"reporter": "SERVER_GATEWAY", "disable_host_header_fallback": true,
		"metrics": []any{map[string]any{"name": "requests_total", "drop": true}}})
	if ov, err := NewOverrides(st); err != nil || !ov.dropped(mRequests) || ov.dropped(mDuration) {
		t.Errorf("Struct config: %+v %v", ov, err)
	}
	// The HTTP filter is registered by name and type.
	if _, err := filters.Lookup(StatsFilterName, StatsTypeURL); err != nil {
		t.Error(err)
	}
}

// TestDimensions: tags set by expression (a Telemetry's tagOverrides value): an added tag
// (custom_dim) is a label of the metric's series, after Istio's, its value the expression's on
// the request; a standard tag's value is replaced; a metric without dimensions keeps its
// label set; an expression that cannot be evaluated records "unknown".
func TestDimensions(t *testing.T) {
	ov, err := NewOverrides(waypointStats(
		&statspb.MetricConfig{Name: "requests_total", Dimensions: map[string]string{"custom_dim": "request.host", "request_protocol": "request.method"}},
		&statspb.MetricConfig{Name: "requests_total", Dimensions: map[string]string{"b_dim": "request.headers['x-b']"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !ov.HasDimensions() {
		t.Fatal("HasDimensions false")
	}
	reg := prometheus.NewRegistry()
	r := New(reg, 100)
	k := Key{Version: "v1", Protocol: HTTP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Baggage: baggage,
		Cluster: "reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"), MutualTLS: true, Overrides: ov}
	for _, host := range []string{"reviews:9080", "reviews:9080", "other:9080"} {
		req := &l7.Request{Method: "GET", Authority: []byte(host), Path: []byte("/")}
		req.Header.Set("x-b", "bee")
		rec := accesslog.Record{Request: req, Code: 200}
		r.LabelSet(k, reviews).RecordHTTPDims(ov.Eval(&rec), 200, -1, 0, time.Millisecond, 10, 20)
	}
	r.LabelSet(k, reviews).RecordHTTP(200, -1, 0, time.Millisecond, 10, 20) // not evaluated (a Dubbo call)
	got := map[string]float64{}
	for _, m := range series(t, reg, "istio_requests_total") {
		l := labels(m)
		if l["request_protocol"] != "GET" && l["request_protocol"] != Unknown {
			t.Errorf("request_protocol %q, want the method", l["request_protocol"])
		}
		got[l["custom_dim"]+" "+l["b_dim"]] += m.GetCounter().GetValue()
	}
	want := map[string]float64{"reviews:9080 bee": 2, "other:9080 bee": 1, "unknown unknown": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("istio_requests_total by custom_dim and b_dim: %v, want %v", got, want)
	}
	// The other metrics keep Istio's labels.
	for _, m := range series(t, reg, "istio_request_duration_milliseconds") {
		if _, ok := labels(m)["custom_dim"]; ok || labels(m)["request_protocol"] != "http" {
			t.Errorf("istio_request_duration_milliseconds: %v", labels(m))
		}
	}
	// A chain without overrides still records its series, in the same family.
	k.Overrides = nil
	r.LabelSet(k, reviews).RecordHTTP(200, -1, 0, time.Millisecond, 10, 20)
	if n := len(series(t, reg, "istio_requests_total")); n != 4 {
		t.Errorf("istio_requests_total: %d series, want 4", n)
	}
}

// TestTCPDimensions: tags of every metric (ALL_METRICS) on TCP connections: evaluated once
// per connection on its record, the opened and closed counts on the same series; an attribute
// a connection lacks (request.host) is "unknown".
func TestTCPDimensions(t *testing.T) {
	ov, err := NewOverrides(waypointStats(&statspb.MetricConfig{Dimensions: map[string]string{"host": "request.host", "up": "upstream.address"}}))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := New(reg, 100)
	k := Key{Version: "v1", Protocol: TCP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Cluster: "reviews",
		Host: netip.MustParseAddrPort("127.0.60.11:9300"), Overrides: ov}
	for range 2 {
		rec := accesslog.Record{Host: k.Host}
		d := ov.Eval(&rec)
		ls := r.LabelSet(k, reviews)
		ls.TCPOpenedDims(d)
		ls.TCPClosedDims(d, 5, 6)
	}
	for _, name := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total"} {
		ms := series(t, reg, name)
		if len(ms) != 1 {
			t.Fatalf("%s: %d series", name, len(ms))
		}
		if l := labels(ms[0]); l["host"] != Unknown || l["up"] != "127.0.60.11:9300" || ms[0].GetCounter().GetValue() != 2 {
			t.Errorf("%s: %v %v", name, l, ms[0].GetCounter().GetValue())
		}
	}
}

// BenchmarkRecordHTTPDimensions: a request of a chain with a tag set by expression (the
// evaluation allocates; a chain without one pays nothing, BenchmarkRecordHTTP).
func BenchmarkRecordHTTPDimensions(b *testing.B) {
	ov, err := NewOverrides(waypointStats(&statspb.MetricConfig{Name: "requests_total", Dimensions: map[string]string{"custom_dim": "request.host"}}))
	if err != nil {
		b.Fatal(err)
	}
	r := New(prometheus.NewRegistry(), 100)
	k := Key{Version: "v1", Protocol: HTTP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Baggage: baggage,
		Cluster: "reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"), MutualTLS: true, Overrides: ov}
	req := &l7.Request{Method: "GET", Authority: []byte("reviews:9080"), Path: []byte("/")}
	b.ReportAllocs()
	for b.Loop() {
		rec := accesslog.Record{Request: req, Code: 200}
		r.LabelSet(k, reviews).RecordHTTPDims(ov.Eval(&rec), 200, -1, 0, time.Millisecond, 10, 20)
	}
}

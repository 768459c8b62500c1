package tracing

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

func TestParseEnvResource(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		want  [][2]string
		warns int
	}{
		{"pairs", "k8s.pod.name=p,service.version=1.2", [][2]string{{"k8s.pod.name", "p"}, {"service.version", "1.2"}}, 0},
		{"empty pairs dropped", ",a=1,,b=2,", [][2]string{{"a", "1"}, {"b", "2"}}, 0},
		{"runs of = are one separator", "a==1", [][2]string{{"a", "1"}}, 0},
		{"no value skipped", "a=,b=2", [][2]string{{"b", "2"}}, 1},
		{"no key skipped", "=1,b=2", [][2]string{{"b", "2"}}, 1},
		{"no = skipped", "a,b=2", [][2]string{{"b", "2"}}, 1},
		{"= in the value skipped", "a=x=y,b=2", [][2]string{{"b", "2"}}, 1},
		// Envoy neither trims nor percent-decodes.
		{"kept as written", " a = x%2Cy ", [][2]string{{" a ", " x%2Cy "}}, 0},
		{"all malformed", "a,b=,=c", nil, 3},
		{"duplicates kept in order", "a=1,a=2", [][2]string{{"a", "1"}, {"a", "2"}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			got := parseEnvResource(c.in, slog.New(slog.NewTextHandler(&logs, nil)))
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if n := strings.Count(logs.String(), "invalid resource attribute"); n != c.warns {
				t.Errorf("%d warnings, want %d: %s", n, c.warns, logs.String())
			}
		})
	}
}

func TestParseProperties(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want [][2]string
	}{
		{"lines", "dt.entity.host=HOST-1\ndt.host_group.id=g\n", [][2]string{{"dt.entity.host", "HOST-1"}, {"dt.host_group.id", "g"}}},
		{"trimmed, blank lines dropped", "  a=1  \r\n\n\tb=2", [][2]string{{"a", "1"}, {"b", "2"}}},
		{"malformed skipped", "a\nb=\n=c\nd=1=2\ne=5", [][2]string{{"e", "5"}}},
		{"empty", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := cmp.Diff(c.want, parseProperties(c.in)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestReadDynatrace: the indirection file names the file to read; missing files are
// fine; a later file's key wins; a warning only when no file gives anything.
func TestReadDynatrace(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real := write("served.properties", "dt.entity.process_group_instance=PGI-1\nshared=from-indirection\n")
	ind := write("dt_metadata_e617c525669e072eebe3d0f08212e8f2.properties", real+"\n")
	host := write("dt_host_metadata.properties", "dt.entity.host=HOST-1\nshared=from-host\n")
	missing := filepath.Join(dir, "dt_metadata.properties")

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got := readDynatrace([]string{ind, missing, host}, log)
	want := [][2]string{{"dt.entity.process_group_instance", "PGI-1"}, {"shared", "from-indirection"}, {"dt.entity.host", "HOST-1"}, {"shared", "from-host"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if logs.Len() != 0 {
		t.Errorf("warned with some files found: %s", logs.String())
	}
	if got := readDynatrace([]string{missing, filepath.Join(dir, "dt_metadata_none.properties")}, log); got != nil {
		t.Errorf("nothing to read gave %v", got)
	}
	if !strings.Contains(logs.String(), "found no enrichment file") {
		t.Errorf("no warning without any file: %q", logs.String())
	}
}

const otelProvider = `{"provider":{"name":"envoy.tracers.opentelemetry","typedConfig":{"@type":"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
	"grpcService":{"envoyGrpc":{"clusterName":"otel"}},"serviceName":"waypoint.ns",`

const (
	envDetector    = `{"name":"envoy.tracers.opentelemetry.resource_detectors.environment","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig"}}`
	dtDetector     = `{"name":"envoy.tracers.opentelemetry.resource_detectors.dynatrace","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.DynatraceResourceDetectorConfig"}}`
	staticDetector = `{"name":"envoy.tracers.opentelemetry.resource_detectors.static_config","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig",
		"attributes":{"team":"static","service.version":"static"}}}`
)

// TestDecodeResourceDetectors: detectors run in order, a later one's attribute replacing
// an earlier one's; a detected service.name replaces service_name at export (newResource).
func TestDecodeResourceDetectors(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "dt_host_metadata.properties")
	if err := os.WriteFile(host, []byte("dt.entity.host=HOST-1\nteam=dynatrace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f []string) { dynatraceFiles = f }(dynatraceFiles)
	dynatraceFiles = []string{filepath.Join(dir, "dt_metadata_x.properties"), host}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=env,team=env,malformed")

	cases := []struct {
		name      string
		detectors string
		want      [][2]string
	}{
		{"environment", envDetector, [][2]string{{"service.version", "env"}, {"team", "env"}}},
		{"environment then static", envDetector + "," + staticDetector, [][2]string{{"service.version", "static"}, {"team", "static"}}},
		{"static then environment", staticDetector + "," + envDetector, [][2]string{{"service.version", "env"}, {"team", "env"}}},
		{"environment then dynatrace", envDetector + "," + dtDetector,
			[][2]string{{"dt.entity.host", "HOST-1"}, {"service.version", "env"}, {"team", "dynatrace"}}},
		{"dynatrace then environment", dtDetector + "," + envDetector,
			[][2]string{{"dt.entity.host", "HOST-1"}, {"service.version", "env"}, {"team", "env"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := decodeJSON(t, otelProvider+`"resourceDetectors":[`+c.detectors+`]}}}`)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, cfg.Resource); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if cfg.resourceKey == "" || cfg.ServiceName != "waypoint.ns" {
				t.Errorf("key %q, service %q", cfg.resourceKey, cfg.ServiceName)
			}
		})
	}

	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env")
	cfg, err := decodeJSON(t, otelProvider+`"resourceDetectors":[`+envDetector+`]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	r := newResource(cfg)
	if v, _ := r.Set().Value("service.name"); v.AsString() != "from-env" || r.Len() != 1 {
		t.Errorf("resource %v: a detected service.name replaces service_name", r)
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	if cfg, err := decodeJSON(t, otelProvider+`"resourceDetectors":[`+envDetector+`]}}}`); err != nil || cfg.Resource != nil || cfg.resourceKey != "" {
		t.Errorf("nothing detected: %v %v", cfg, err)
	}
}

func TestDecodeResourceDetectorsRefused(t *testing.T) {
	cases := []struct{ name, js, want string }{
		{"unknown detector", otelProvider + `"resourceDetectors":[` + envDetector + `,{"name":"x","typedConfig":{"@type":"type.googleapis.com/google.protobuf.Empty"}}]}}}`,
			"provider.typed_config.resource_detectors[1]: unsupported resource detector"},
		{"sampler", otelProvider + `"sampler":{"name":"s","typedConfig":{"@type":"type.googleapis.com/google.protobuf.Empty"}}}}}`,
			"provider.typed_config.sampler: not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeJSON(t, c.js)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestResourceExport: the detected attributes are on the resource of the spans exported,
// and configs that differ only in their resource have a provider each.
func TestResourceExport(t *testing.T) {
	var mu sync.Mutex
	resources := map[string]map[string]string{} // by span path
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			attrs := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					for _, kv := range sp.GetAttributes() {
						if kv.GetKey() == "http.url" {
							resources[kv.GetValue().GetStringValue()] = attrs
						}
					}
				}
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer srv.Close()
	tr := &Tracers{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}
	base := Config{RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256, Cluster: "otel", ServiceName: "waypoint.ns",
		HTTP: &HTTPService{Host: "otel", Path: "/v1/traces", Timeout: time.Second}}
	a, b := base, base
	a.Resource = [][2]string{{"team", "a"}}
	b.Resource = [][2]string{{"service.name", "detected"}, {"team", "b"}}
	for _, c := range []struct {
		cfg  *Config
		path string
	}{{&base, "/none"}, {&a, "/a"}, {&b, "/b"}} {
		s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte(c.path), Authority: []byte("r")}, &filters.Downstream{}, nil)
		var sp Span
		tr.Start(c.cfg, s, &sp)
		sp.End(s, &accesslog.Record{Code: 200})
	}
	tr.mu.Lock()
	n := len(tr.providers)
	tr.mu.Unlock()
	if n != 3 {
		t.Errorf("%d providers for 3 resources", n)
	}
	tr.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	want := map[string]map[string]string{
		"r/none": {"service.name": "waypoint.ns"},
		"r/a":    {"service.name": "waypoint.ns", "team": "a"},
		"r/b":    {"service.name": "detected", "team": "b"},
	}
	if d := cmp.Diff(want, resources); d != "" {
		t.Errorf("resources (-want +got):\n%s", d)
	}
}

// BenchmarkStartResource: a sampled span under a config without resource detectors
// allocates no more than before them, and one with detectors no more than that (the
// provider's key is made at decode).
func BenchmarkStartResource(b *testing.B) {
	tr := &Tracers{Dial: func(ctx context.Context, _ string) (net.Conn, error) { return nil, io.EOF }}
	defer tr.Shutdown(context.Background())
	plain := &Config{RandomSampling: 100, OverallSampling: 100, MaxPathTagLength: 256, Cluster: "otel", ServiceName: "w",
		HTTP: &HTTPService{Host: "otel", Path: "/v1/traces", Timeout: time.Second}}
	withRes := *plain
	withRes.Resource = [][2]string{{"team", "a"}}
	withRes.resourceKey = "[[team a]]"
	for _, bc := range []struct {
		name string
		cfg  *Config
	}{{"none", plain}, {"detected", &withRes}} {
		b.Run(bc.name, func(b *testing.B) {
			s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/"), Authority: []byte("r")}, &filters.Downstream{}, nil)
			b.ReportAllocs()
			for b.Loop() {
				var sp Span
				tr.Start(bc.cfg, s, &sp)
			}
		})
	}
}

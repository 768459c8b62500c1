// Package tracing is an HttpConnectionManager's tracing as istiod writes
// it: the OpenTelemetry provider (envoy.tracers.opentelemetry) exporting
// over OTLP gRPC to a collector cluster, Envoy's sampling percentages, and
// custom tags. The trace context is extracted from W3C traceparent and
// tracestate, else from B3 (x-b3-* or the single b3 header), and sent
// upstream as W3C; each request has a server span and each upstream try a
// client span, exported in batches by the OpenTelemetry SDK, which drops
// spans rather than block a request when the collector falls behind.
//
// The OpenTelemetry tracer's resource detectors (environment, Dynatrace,
// static) run when the config is decoded; what they find is on the
// resource of every span exported (resource.go).
//
// B3 extraction is written here: the OpenTelemetry B3 propagator lives in
// a contrib module this project cannot use; the format is a few headers.
package tracing

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// ProviderName is the tracer istiod configures for OpenTelemetry;
// ZipkinName its Zipkin tracer.
const (
	ProviderName = "envoy.tracers.opentelemetry"
	ZipkinName   = "envoy.tracers.zipkin"
)

// Config is a decoded HttpConnectionManager tracing. Read-only.
type Config struct {
	// Cluster is the collector's cluster (grpc_service.envoy_grpc
	// cluster_name); Authority its :authority (default the cluster name).
	Cluster, Authority string
	// ServiceName is the resource's service.name (default "waypoint").
	ServiceName string
	// Resource is what the resource detectors found when the config was
	// decoded (key, value; sorted by key), added to the spans' resource
	// over service.name (a detected service.name replaces ServiceName).
	Resource [][2]string
	// resourceKey is Resource as a provider's key, made at decode.
	resourceKey string
	// RandomSampling and OverallSampling are percentages (default 100):
	// a request without a sampled parent is traced with probability
	// RandomSampling × OverallSampling / 100². A parent's decision is
	// kept. ClientSampling (x-client-trace-id) is accepted and changes
	// nothing: the waypoint does not force traces.
	RandomSampling, OverallSampling, ClientSampling float64
	// MaxPathTagLength truncates http.url (default 256).
	MaxPathTagLength int
	// Tags are the custom tags added to every server span.
	Tags []Tag
	// HTTP, when set, makes the OpenTelemetry tracer export over OTLP/HTTP
	// (protobuf POSTed to HTTP.Path of Cluster) instead of gRPC.
	HTTP *HTTPService
	// Zipkin, when set, makes the tracer Envoy's Zipkin
	// (envoy.tracers.zipkin): spans POSTed as Zipkin v2 JSON to Cluster,
	// the context propagated as B3. Nil: OpenTelemetry over OTLP gRPC.
	Zipkin *Zipkin
	// ClusterField names the field Cluster came from, for errors.
	ClusterField string
}

// HTTPService is where spans are POSTed: an HttpService, or Zipkin's
// legacy fields.
type HTTPService struct {
	// Path is the collector endpoint (/api/v2/spans, /v1/traces), Host
	// the request's Host (the URI's host, or Zipkin's collector_hostname;
	// default the cluster name).
	Path, Host string
	// Timeout bounds one POST (http_uri.timeout; default 5 s).
	Timeout time.Duration
	// Headers are added to each POST (request_headers_to_add).
	Headers [][2]string
}

// Zipkin is a ZipkinConfig: where and how spans are sent.
type Zipkin struct {
	HTTPService
	// TraceID128 makes new traces 128-bit (else 64-bit, as Envoy's
	// default).
	TraceID128 bool
	// W3C also propagates traceparent (trace_context_option
	// USE_B3_WITH_W3C_PROPAGATION); B3 headers are always sent.
	W3C bool
}

// Tag is one custom tag: a literal (or an environment variable, read at
// decode), a request header, or a format value (Envoy's command
// operators, as access logs use them). Metadata tags are accepted and
// never set: the waypoint keeps no dynamic metadata, and Envoy sets no tag
// for an absent key.
type Tag struct {
	Name    string
	Literal string
	Header  string // lower-case; Literal is its default
	Value   *accesslog.Format
}

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing": pbcheck.F(
		"client_sampling", "random_sampling", "overall_sampling", "max_path_tag_length", "custom_tags", "provider", "verbose"),
	"envoy.type.v3.Percent":                       pbcheck.F("value"),
	"envoy.config.trace.v3.Tracing.Http":          pbcheck.F("name", "typed_config"),
	"envoy.config.trace.v3.OpenTelemetryConfig":   pbcheck.F("grpc_service", "http_service", "service_name", "resource_detectors"),
	"envoy.config.core.v3.TypedExtensionConfig":   pbcheck.F("name", "typed_config"),
	"envoy.config.core.v3.GrpcService":            pbcheck.F("envoy_grpc", "timeout", "initial_metadata*"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":  pbcheck.F("cluster_name", "authority"),
	"envoy.type.tracing.v3.CustomTag":             pbcheck.F("tag", "literal", "environment", "request_header", "metadata*", "value"),
	"envoy.type.tracing.v3.CustomTag.Literal":     pbcheck.F("value"),
	"envoy.type.tracing.v3.CustomTag.Environment": pbcheck.F("name", "default_value"),
	"envoy.type.tracing.v3.CustomTag.Header":      pbcheck.F("name", "default_value"),
	"envoy.config.trace.v3.ZipkinConfig": pbcheck.F("collector_cluster", "collector_endpoint", "trace_id_128bit",
		"shared_span_context", "collector_endpoint_version", "collector_hostname", "trace_context_option", "collector_service"),
	"envoy.config.core.v3.HttpService":       pbcheck.F("http_uri", "request_headers_to_add"),
	"envoy.config.core.v3.HttpUri":           pbcheck.F("uri", "cluster", "timeout"),
	"envoy.config.core.v3.HeaderValueOption": pbcheck.F("header", "append_action"),
	"envoy.config.core.v3.HeaderValue":       pbcheck.F("key", "value"),
}

// Decode decodes an HCM's tracing; nil when pb is nil. A tracing block
// without a provider samples nothing and exports nothing (Envoy then has
// no tracer). Errors name the field relative to tracing.
func Decode(pb *hcmv3.HttpConnectionManager_Tracing) (*Config, error) {
	if pb == nil {
		return nil, nil
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	c := &Config{RandomSampling: 100, OverallSampling: 100, ClientSampling: 100, MaxPathTagLength: 256, ServiceName: "waypoint"}
	if p := pb.GetRandomSampling(); p != nil {
		c.RandomSampling = p.GetValue()
	}
	if p := pb.GetOverallSampling(); p != nil {
		c.OverallSampling = p.GetValue()
	}
	if p := pb.GetClientSampling(); p != nil {
		c.ClientSampling = p.GetValue()
	}
	if n := pb.GetMaxPathTagLength(); n != nil {
		c.MaxPathTagLength = int(n.GetValue())
	}
	for i, t := range pb.GetCustomTags() {
		tag, ok, err := decodeTag(t)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("custom_tags", i), err)
		}
		if ok {
			c.Tags = append(c.Tags, tag)
		}
	}
	prov := pb.GetProvider()
	if prov == nil {
		return nil, nil
	}
	if err := allowlist.Check(prov.ProtoReflect()); err != nil {
		return nil, pbcheck.At("provider", err)
	}
	var otel tracev3.OpenTelemetryConfig
	var zipkin tracev3.ZipkinConfig
	switch prov.GetTypedConfig().MessageName() {
	case otel.ProtoReflect().Descriptor().FullName():
	case zipkin.ProtoReflect().Descriptor().FullName():
		if err := prov.GetTypedConfig().UnmarshalTo(&zipkin); err != nil {
			return nil, pbcheck.At("provider.typed_config", err)
		}
		if err := decodeZipkin(&zipkin, c); err != nil {
			return nil, pbcheck.At("provider.typed_config", err)
		}
		return c, nil
	default:
		return nil, pbcheck.ErrAt("provider", "unsupported tracer %q (%s): only %s and %s", prov.GetName(), prov.GetTypedConfig().GetTypeUrl(), ProviderName, ZipkinName)
	}
	if err := prov.GetTypedConfig().UnmarshalTo(&otel); err != nil {
		return nil, pbcheck.At("provider.typed_config", err)
	}
	if err := allowlist.Check(otel.ProtoReflect()); err != nil {
		return nil, pbcheck.At("provider.typed_config", err)
	}
	if n := otel.GetServiceName(); n != "" {
		c.ServiceName = n
	}
	if rd := otel.GetResourceDetectors(); len(rd) > 0 {
		var err error
		if c.Resource, err = detectResource(rd, slog.Default()); err != nil {
			return nil, pbcheck.At("provider.typed_config", err)
		}
		if c.Resource != nil {
			c.resourceKey = fmt.Sprint(c.Resource)
		}
	}
	if hs := otel.GetHttpService(); hs != nil {
		if otel.GetGrpcService() != nil {
			return nil, pbcheck.ErrAt("provider.typed_config", "grpc_service and http_service are exclusive")
		}
		c.HTTP = &HTTPService{Timeout: 5 * time.Second}
		var err error
		if c.Cluster, err = decodeHTTPService(hs, c.HTTP); err != nil {
			return nil, pbcheck.At("provider.typed_config.http_service", err)
		}
		c.Authority, c.ClusterField = c.HTTP.Host, "provider.typed_config.http_service.http_uri.cluster"
		return c, nil
	}
	eg, ok := otel.GetGrpcService().GetTargetSpecifier().(*corev3.GrpcService_EnvoyGrpc_)
	if !ok || eg.EnvoyGrpc.GetClusterName() == "" {
		return nil, pbcheck.ErrAt("provider.typed_config.grpc_service.envoy_grpc.cluster_name", "required")
	}
	c.Cluster, c.Authority = eg.EnvoyGrpc.GetClusterName(), eg.EnvoyGrpc.GetAuthority()
	c.ClusterField = "provider.typed_config.grpc_service.envoy_grpc.cluster_name"
	if c.Authority == "" {
		c.Authority = c.Cluster
	}
	return c, nil
}

// decodeZipkin decodes a ZipkinConfig into c: the collector as the legacy
// fields (collector_cluster, collector_endpoint, collector_hostname) or as
// collector_service (istiod's form for proxies of 1.29 and later), which
// takes precedence as in Envoy. Errors are relative to typed_config.
func decodeZipkin(pb *tracev3.ZipkinConfig, c *Config) error {
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return err
	}
	if v := pb.GetCollectorEndpointVersion(); v != tracev3.ZipkinConfig_HTTP_JSON {
		return pbcheck.ErrAt("collector_endpoint_version", "%s is not supported: only HTTP_JSON", v)
	}
	if s := pb.GetSharedSpanContext(); s == nil || s.GetValue() {
		// Envoy's default (true) makes the server span reuse the
		// client's span id; the waypoint always starts a span of its own.
		return pbcheck.ErrAt("shared_span_context", "only false is supported (the default, true, is not)")
	}
	z := &Zipkin{HTTPService: HTTPService{Path: pb.GetCollectorEndpoint(), Host: pb.GetCollectorHostname(), Timeout: 5 * time.Second},
		TraceID128: pb.GetTraceId_128Bit(), W3C: pb.GetTraceContextOption() == tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION}
	c.Cluster, c.ClusterField = pb.GetCollectorCluster(), "provider.typed_config.collector_cluster"
	if hs := pb.GetCollectorService(); hs != nil {
		var err error
		if c.Cluster, err = decodeHTTPService(hs, &z.HTTPService); err != nil {
			return pbcheck.At("collector_service", err)
		}
		c.ClusterField = "provider.typed_config.collector_service.http_uri.cluster"
	}
	if c.Cluster == "" {
		return pbcheck.ErrAt("collector_cluster", "required (or collector_service.http_uri.cluster)")
	}
	if z.Path == "" || z.Path[0] != '/' {
		return pbcheck.ErrAt("collector_endpoint", "required, an absolute path: %q", z.Path)
	}
	if z.Host == "" {
		z.Host = c.Cluster
	}
	c.Zipkin, c.Authority = z, z.Host
	return nil
}

// decodeHTTPService decodes an HttpService into h (whose Timeout is the
// default) and returns its cluster. The URI is read as Envoy does: an
// optional http:// or https:// scheme, the host, then the path ("/" when
// none); istiod writes the OpenTelemetry one without a scheme.
func decodeHTTPService(hs *corev3.HttpService, h *HTTPService) (string, error) {
	uri := hs.GetHttpUri()
	rest, ok := strings.CutPrefix(uri.GetUri(), "http://")
	if !ok {
		rest, _ = strings.CutPrefix(rest, "https://")
	}
	h.Host, h.Path = rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		h.Host, h.Path = rest[:i], rest[i:]
	}
	if h.Host == "" {
		return "", pbcheck.ErrAt("http_uri.uri", "no host in %q", uri.GetUri())
	}
	if uri.GetCluster() == "" {
		return "", pbcheck.ErrAt("http_uri.cluster", "required")
	}
	if uri.GetTimeout() != nil {
		var err error
		if h.Timeout, err = pbcheck.Duration(uri.GetTimeout(), h.Timeout); err != nil {
			return "", pbcheck.At("http_uri.timeout", err)
		}
	}
	for i, hv := range hs.GetRequestHeadersToAdd() {
		k := hv.GetHeader().GetKey()
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return "", pbcheck.ErrAt(pbcheck.Idx("request_headers_to_add", i)+".header.key", "invalid header name %q", k)
		}
		h.Headers = append(h.Headers, [2]string{k, hv.GetHeader().GetValue()})
	}
	return uri.GetCluster(), nil
}

func decodeTag(pb *tracingv3.CustomTag) (Tag, bool, error) {
	t := Tag{Name: pb.GetTag()}
	if t.Name == "" {
		return t, false, pbcheck.ErrAt("tag", "required")
	}
	switch v := pb.GetType().(type) {
	case *tracingv3.CustomTag_Literal_:
		t.Literal = v.Literal.GetValue()
	case *tracingv3.CustomTag_Environment_:
		t.Literal = v.Environment.GetDefaultValue()
		if e, ok := os.LookupEnv(v.Environment.GetName()); ok {
			t.Literal = e
		}
	case *tracingv3.CustomTag_RequestHeader:
		t.Header, t.Literal = toLower(v.RequestHeader.GetName()), v.RequestHeader.GetDefaultValue()
	case *tracingv3.CustomTag_Metadata_:
		return t, false, nil
	case *tracingv3.CustomTag_Value:
		f, err := accesslog.Compile(v.Value, true)
		if err != nil {
			return t, false, pbcheck.At("value", err)
		}
		t.Value = f
	default:
		return t, false, fmt.Errorf("one of literal, environment, request_header, metadata or value is required")
	}
	return t, true, nil
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

package tracing

import (
	"context"
	"net"
	"net/http"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpHTTPExporter is the SDK's OTLP/HTTP exporter (protobuf POSTed to
// the collector) over connections dialed to the collector's cluster;
// Shutdown also closes the idle ones.
type otlpHTTPExporter struct {
	sdktrace.SpanExporter
	tr *http.Transport
}

func newOTLPHTTPExporter(h *HTTPService, cluster string, dial func(context.Context, string) (net.Conn, error)) (*otlpHTTPExporter, error) {
	tr := clusterTransport(cluster, dial)
	headers := make(map[string]string, len(h.Headers))
	for _, kv := range h.Headers {
		headers[kv[0]] = kv[1]
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpoint(h.Host), otlptracehttp.WithURLPath(h.Path), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHeaders(headers), otlptracehttp.WithHTTPClient(&http.Client{Transport: tr, Timeout: h.Timeout}))
	if err != nil {
		return nil, err
	}
	return &otlpHTTPExporter{SpanExporter: exp, tr: tr}, nil
}

func (e *otlpHTTPExporter) Shutdown(ctx context.Context) error {
	err := e.SpanExporter.Shutdown(ctx)
	e.tr.CloseIdleConnections()
	return err
}

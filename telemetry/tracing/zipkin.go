package tracing

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// zipkinExporter POSTs spans to a Zipkin collector as v2 JSON (Envoy's
// HTTP_JSON), over connections dialed to the collector's cluster. Its
// batch processor calls it from one goroutine; the provider's Shutdown
// ends it.
type zipkinExporter struct {
	z       *Zipkin
	service string
	client  *http.Client
	tr      *http.Transport
}

func newZipkinExporter(z *Zipkin, cluster, service string, dial func(context.Context, string) (net.Conn, error)) *zipkinExporter {
	tr := clusterTransport(cluster, dial)
	return &zipkinExporter{z: z, service: service, tr: tr, client: &http.Client{Transport: tr, Timeout: z.Timeout}}
}

// clusterTransport is an HTTP/1.1 transport whose every connection is
// dialed to cluster (the URL's host is only the request's Host), keeping
// one idle connection, closed by CloseIdleConnections at shutdown.
func clusterTransport(cluster string, dial func(context.Context, string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, cluster) },
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}

type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind,omitempty"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	LocalEndpoint zipkinEndpoint    `json:"localEndpoint"`
	Tags          map[string]string `json:"tags,omitempty"`
}

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName"`
}

// zipkinTraceID is the trace id in hex: 16 digits when its upper half is
// zero (a 64-bit trace), else 32, as Envoy writes it.
func zipkinTraceID(t trace.TraceID) string {
	if binary.BigEndian.Uint64(t[:8]) == 0 {
		return hex.EncodeToString(t[8:])
	}
	return t.String()
}

// zipkinJSON encodes spans as a Zipkin v2 JSON list.
func zipkinJSON(spans []sdktrace.ReadOnlySpan, service string) ([]byte, error) {
	out := make([]zipkinSpan, 0, len(spans))
	for _, s := range spans {
		sc := s.SpanContext()
		z := zipkinSpan{
			TraceID:       zipkinTraceID(sc.TraceID()),
			ID:            sc.SpanID().String(),
			Name:          s.Name(),
			Timestamp:     s.StartTime().UnixMicro(),
			Duration:      max(1, s.EndTime().Sub(s.StartTime()).Microseconds()),
			LocalEndpoint: zipkinEndpoint{ServiceName: service},
		}
		if p := s.Parent(); p.SpanID().IsValid() {
			z.ParentID = p.SpanID().String()
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			z.Kind = "SERVER"
		case trace.SpanKindClient:
			z.Kind = "CLIENT"
		}
		if attrs := s.Attributes(); len(attrs) > 0 || s.Status().Code == codes.Error {
			z.Tags = make(map[string]string, len(attrs)+1)
			for _, a := range attrs {
				z.Tags[string(a.Key)] = a.Value.Emit()
			}
			if st := s.Status(); st.Code == codes.Error {
				z.Tags["error"] = "true"
				if st.Description != "" {
					z.Tags["error"] = st.Description
				}
			}
		}
		out = append(out, z)
	}
	return json.Marshal(out)
}

func (e *zipkinExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	body, err := zipkinJSON(spans, e.service)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.z.Host+e.z.Path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("zipkin: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range e.z.Headers {
		req.Header.Add(h[0], h[1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("zipkin: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("zipkin: the collector answered %s", resp.Status)
	}
	return nil
}

func (e *zipkinExporter) Shutdown(context.Context) error {
	e.tr.CloseIdleConnections()
	return nil
}

// ids64 makes 64-bit trace ids (the upper half zero), as Envoy's Zipkin
// tracer does without trace_id_128bit.
type ids64 struct{}

func (ids64) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var t trace.TraceID
	copy(t[8:], tid64())
	return t, newSpanID()
}

func (ids64) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

// tid64 is a random non-zero 64-bit trace id, big-endian.
func tid64() []byte {
	var b [8]byte
	for binary.BigEndian.Uint64(b[:]) == 0 {
		binary.BigEndian.PutUint64(b[:], rand.Uint64())
	}
	return b[:]
}

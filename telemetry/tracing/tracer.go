package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/clustergrpc"
)

// BatchTimeout is how long a span may wait in the batch before export.
const BatchTimeout = time.Second

// IdleProviderTimeout is how long a tracer provider may go without a new
// span before it is shut down, when another is made (Tracers.IdleTimeout).
const IdleProviderTimeout = 5 * time.Minute

// Tracers owns the span exporters of a process: one OpenTelemetry
// TracerProvider (batching, exporting over OTLP gRPC, OTLP/HTTP or Zipkin)
// per collector and settings, made on first use. A provider that started no
// span for IdleTimeout is shut down when a new one is made (a config that
// replaced its tracing leaves none behind), each in a goroutine Shutdown
// waits for; Shutdown stops the rest. Safe for concurrent use.
type Tracers struct {
	// Dial opens a connection to one endpoint of the named cluster (the
	// collector), as the proxy reaches clusters.
	Dial func(ctx context.Context, cluster string) (net.Conn, error)
	Log  *slog.Logger // default slog.Default()

	// LocalCluster is the service name of Zipkin spans (Envoy's local
	// cluster, node.cluster); default "waypoint".
	LocalCluster string

	// IdleTimeout overrides IdleProviderTimeout when positive.
	IdleTimeout time.Duration

	mu        sync.Mutex
	providers map[providerKey]*provider // guarded by mu
	closed    bool                      // guarded by mu
	retiring  sync.WaitGroup            // providers being shut down
}

// provider is one exporter's pipeline and what it last served.
type provider struct {
	tp   *sdktrace.TracerProvider
	conn *grpc.ClientConn // OTLP/gRPC only
	used time.Time        // the last span started; guarded by Tracers.mu
}

func (p *provider) shutdown(ctx context.Context) {
	p.tp.Shutdown(ctx)
	if p.conn != nil {
		p.conn.Close()
	}
}

type providerKey struct {
	cluster, authority, service string
	resource                    string // Config.Resource
	// the exporter over HTTP ("zipkin", "otlp/http") and its settings;
	// zero for OTLP/gRPC
	zipkin, path, headers string
	timeout               time.Duration
	id128, w3c            bool
}

func (t *Tracers) tracer(c *Config) trace.Tracer {
	k := providerKey{cluster: c.Cluster, authority: c.Authority, service: c.ServiceName, resource: c.resourceKey}
	if k.resource == "" && len(c.Resource) > 0 { // a Config not made by Decode
		k.resource = fmt.Sprint(c.Resource)
	}
	if z := c.Zipkin; z != nil {
		k.zipkin, k.path, k.headers, k.timeout, k.id128, k.w3c = "zipkin", z.Path, fmt.Sprint(z.Headers), z.Timeout, z.TraceID128, z.W3C
	}
	if h := c.HTTP; h != nil {
		k.zipkin, k.path, k.headers, k.timeout = "otlp/http", h.Path, fmt.Sprint(h.Headers), h.Timeout
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	now := time.Now()
	if p := t.providers[k]; p != nil {
		p.used = now
		return p.tp.Tracer("waypoint")
	}
	t.retireIdle(now)
	cluster := c.Cluster
	if c.Zipkin != nil {
		return t.provider(k, newZipkinExporter(c.Zipkin, cluster, t.localCluster(), t.Dial), nil, c)
	}
	if c.HTTP != nil {
		exp, err := newOTLPHTTPExporter(c.HTTP, cluster, t.Dial)
		if err != nil {
			t.log().Error("tracing: cannot make the OTLP/HTTP exporter", "cluster", c.Cluster, "error", err)
			return nil
		}
		return t.provider(k, exp, nil, c)
	}
	conn, err := clustergrpc.NewClient(c.Authority, cluster, t.Dial)
	if err == nil {
		var exp *otlptrace.Exporter
		exp, err = otlptracegrpc.New(context.Background(), otlptracegrpc.WithGRPCConn(conn))
		if err == nil {
			return t.provider(k, exp, conn, c)
		}
		conn.Close()
	}
	t.log().Error("tracing: cannot make the OTLP exporter", "cluster", c.Cluster, "error", err)
	return nil
}

// retireIdle shuts down, in the background, the providers idle for the
// idle timeout at now. Called with mu held.
func (t *Tracers) retireIdle(now time.Time) {
	idle := t.IdleTimeout
	if idle <= 0 {
		idle = IdleProviderTimeout
	}
	for k, p := range t.providers {
		if now.Sub(p.used) < idle {
			continue
		}
		delete(t.providers, k)
		t.retiring.Add(1)
		go func() {
			defer t.retiring.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.shutdown(ctx)
		}()
	}
}

// provider makes the provider of k exporting through exp (over conn, when
// not nil). Called with mu held.
func (t *Tracers) provider(k providerKey, exp sdktrace.SpanExporter, conn *grpc.ClientConn, c *Config) trace.Tracer {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(BatchTimeout))),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // the decision is made before a span is started
		sdktrace.WithResource(newResource(c)),
	}
	if c.Zipkin != nil && !c.Zipkin.TraceID128 {
		opts = append(opts, sdktrace.WithIDGenerator(ids64{}))
	}
	p := &provider{tp: sdktrace.NewTracerProvider(opts...), conn: conn, used: time.Now()}
	if t.providers == nil {
		t.providers = map[providerKey]*provider{}
	}
	t.providers[k] = p
	return p.tp.Tracer("waypoint")
}

// newResource is the spans' resource: service.name, then what the resource
// detectors found, which replaces it (as Envoy merges a detected resource
// over its initial one).
func newResource(c *Config) *resource.Resource {
	attrs := make([]attribute.KeyValue, 0, 1+len(c.Resource))
	attrs = append(attrs, semconv.ServiceName(c.ServiceName))
	for _, kv := range c.Resource {
		if kv[0] == string(semconv.ServiceNameKey) {
			attrs[0] = attribute.String(kv[0], kv[1])
			continue
		}
		attrs = append(attrs, attribute.String(kv[0], kv[1]))
	}
	return resource.NewSchemaless(attrs...)
}

func (t *Tracers) localCluster() string {
	if t.LocalCluster != "" {
		return t.LocalCluster
	}
	return "waypoint"
}

func (t *Tracers) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

// Shutdown exports what is batched and stops every provider, and waits
// for those being retired.
func (t *Tracers) Shutdown(ctx context.Context) {
	t.mu.Lock()
	t.closed = true
	ps := t.providers
	t.providers = nil
	t.mu.Unlock()
	for _, p := range ps {
		p.shutdown(ctx)
	}
	t.retiring.Wait()
}

// Span is one request's server span: a recorded OpenTelemetry span when
// the request is sampled, else only the trace context passed on. Owned by
// the stream's goroutine, which reports each upstream try to it.
type Span struct {
	cfg    *Config
	tracer trace.Tracer
	ctx    context.Context // carries span, when sampled
	span   trace.Span
	client trace.Span // the try in flight, when sampled
	sc     trace.SpanContext
	parent trace.SpanID // sc's parent (B3's x-b3-parentspanid), when known
}

// Start begins the server span of s under c into sp (the caller's
// storage, so that an unsampled request allocates nothing): the parent
// from traceparent (else B3) if the request has one, the sampling decision
// (the parent's, else c's percentages), and for a sampled request a
// recorded span.
func (t *Tracers) Start(c *Config, s *filters.Stream, sp *Span) {
	*sp = Span{cfg: c}
	parent, ok := extract(&s.Request.Header)
	sampled := parent.IsSampled()
	if !ok {
		sampled = rand.Float64()*100 < c.RandomSampling && rand.Float64()*100 < c.OverallSampling
	}
	if sampled {
		sp.tracer = t.tracer(c)
	}
	if sp.tracer == nil {
		var tid trace.TraceID
		if ok {
			tid, sp.parent = parent.TraceID(), parent.SpanID()
		} else {
			tid = newTraceID()
			if c.Zipkin != nil && !c.Zipkin.TraceID128 {
				tid = trace.TraceID{}
				copy(tid[8:], tid64())
			}
		}
		sp.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceState: parent.TraceState()})
		return
	}
	ctx := context.Background()
	if ok {
		if ts, ok := s.Request.Header.Get("tracestate"); ok {
			if st, err := trace.ParseTraceState(string(ts)); err == nil {
				parent = parent.WithTraceState(st)
			}
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent.WithTraceFlags(trace.FlagsSampled))
	}
	sp.ctx, sp.span = sp.tracer.Start(ctx, operation(s.Request), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(s.Start))
	sp.sc = sp.span.SpanContext()
	if ok {
		sp.parent = parent.SpanID()
	}
}

// operation names the server span as Istio's route decorators do:
// "authority/*"... the host and port asked for.
func operation(req *l7.Request) string {
	return string(req.Authority) + "/*"
}

// TraceID is the request's trace id in hex.
func (sp *Span) TraceID() string { return sp.sc.TraceID().String() }

// Active reports whether sp was started (the stream has tracing).
func (sp *Span) Active() bool { return sp.cfg != nil }

// Sampled reports whether the span is recorded.
func (sp *Span) Sampled() bool { return sp.span != nil }

// StartAttempt opens a client span for an upstream try, whose context
// goes upstream in traceparent (the server span's context when the request
// is not sampled).
func (sp *Span) StartAttempt(s *filters.Stream, ureq *filters.UpstreamRequest) {
	if sp.span == nil {
		sp.inject(&ureq.Request.Header, sp.sc, sp.parent)
		return
	}
	_, sp.client = sp.tracer.Start(sp.ctx, "router "+ureq.Cluster+" egress", trace.WithSpanKind(trace.SpanKindClient))
	sp.inject(&ureq.Request.Header, sp.client.SpanContext(), sp.sc.SpanID())
}

// inject propagates sc upstream: W3C for OpenTelemetry; B3 for Zipkin
// (and W3C too when its trace_context_option asks).
func (sp *Span) inject(h *l7.Header, sc trace.SpanContext, parent trace.SpanID) {
	if z := sp.cfg.Zipkin; z != nil {
		injectB3(h, sc, parent)
		if !z.W3C {
			return
		}
	}
	inject(h, sc)
}

// EndAttempt ends the try's client span.
func (sp *Span) EndAttempt(s *filters.Stream, ureq *filters.UpstreamRequest, resp *l7.Response, err error) {
	cs := sp.client
	if cs == nil {
		return
	}
	sp.client = nil
	attrs := []attribute.KeyValue{
		attribute.String("upstream_cluster", ureq.Cluster),
		attribute.String("upstream_cluster.name", ureq.Cluster),
		attribute.String("component", "proxy"),
	}
	if ureq.Host.IsValid() {
		attrs = append(attrs, attribute.String("upstream_address", ureq.Host.String()))
	}
	if resp != nil {
		attrs = append(attrs, attribute.Int("http.status_code", resp.Status))
		if resp.Status >= 500 {
			cs.SetStatus(codes.Error, "")
		}
	}
	if err != nil {
		attrs = append(attrs, attribute.String("error.message", err.Error()))
		cs.SetStatus(codes.Error, err.Error())
	}
	cs.SetAttributes(attrs...)
	cs.End()
}

// End records the server span's attributes and ends it. rec describes the
// finished request (the access log's view of it, for the value tags).
func (sp *Span) End(s *filters.Stream, rec *accesslog.Record) {
	if sp == nil || sp.span == nil {
		return
	}
	req := s.Request
	url := string(req.Authority) + string(req.Path)
	if len(url) > sp.cfg.MaxPathTagLength {
		url = url[:sp.cfg.MaxPathTagLength]
	}
	flags := rec.Flags.String()
	if flags == "" {
		flags = "-"
	}
	attrs := []attribute.KeyValue{
		attribute.String("component", "proxy"),
		attribute.String("http.method", req.Method),
		attribute.String("http.url", url),
		attribute.String("http.protocol", req.Proto.String()),
		attribute.String("http.status_code", strconv.Itoa(rec.Code)),
		attribute.String("response_flags", flags),
		attribute.String("upstream_cluster", s.UpstreamCluster),
		attribute.String("upstream_cluster.name", s.UpstreamCluster),
		attribute.String("request_size", strconv.FormatInt(rec.BytesIn, 10)),
		attribute.String("response_size", strconv.FormatInt(rec.BytesOut, 10)),
	}
	if s.Downstream != nil {
		if s.Downstream.PeerURI != "" {
			attrs = append(attrs, attribute.String("istio.peer_principal", s.Downstream.PeerURI))
		}
		if a := s.TrustedRemoteAddr(); a.IsValid() {
			attrs = append(attrs, attribute.String("peer.address", a.Addr().String()))
		}
	}
	if v, ok := req.Header.Get("x-request-id"); ok {
		attrs = append(attrs, attribute.String("guid:x-request-id", string(v)))
	}
	if v, ok := req.Header.Get("user-agent"); ok {
		attrs = append(attrs, attribute.String("user_agent", string(v)))
	}
	if s.UpstreamHost.IsValid() {
		attrs = append(attrs, attribute.String("upstream_address", s.UpstreamHost.String()))
	}
	for _, t := range sp.cfg.Tags {
		switch {
		case t.Value != nil:
			attrs = append(attrs, attribute.String(t.Name, string(t.Value.Append(nil, rec))))
		case t.Header != "":
			v, ok := req.Header.Get(t.Header)
			if !ok {
				if t.Literal == "" {
					continue
				}
				v = []byte(t.Literal)
			}
			attrs = append(attrs, attribute.String(t.Name, string(v)))
		default:
			attrs = append(attrs, attribute.String(t.Name, t.Literal))
		}
	}
	sp.span.SetAttributes(attrs...)
	if rec.Code >= 500 {
		sp.span.SetStatus(codes.Error, "")
	}
	sp.span.End()
}

// extract reads the parent's context: W3C traceparent, else B3.
func extract(h *l7.Header) (trace.SpanContext, bool) {
	if v, ok := h.Get("traceparent"); ok {
		return parseTraceparent(v)
	}
	if v, ok := h.Get("b3"); ok {
		return parseB3Single(v)
	}
	tid, ok1 := h.Get("x-b3-traceid")
	sid, ok2 := h.Get("x-b3-spanid")
	if !ok1 || !ok2 {
		return trace.SpanContext{}, false
	}
	sampled, _ := h.Get("x-b3-sampled")
	flags, _ := h.Get("x-b3-flags")
	return b3(tid, sid, string(sampled) == "1" || string(sampled) == "true" || string(flags) == "1")
}

// parseTraceparent parses "00-<32 hex>-<16 hex>-<2 hex>" (a later
// version's extra fields are ignored, as W3C asks).
func parseTraceparent(v []byte) (trace.SpanContext, bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}, false
	}
	if string(v[:2]) == "ff" || (string(v[:2]) == "00" && len(v) != 55) {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var fl [1]byte
	if !decodeHex(tid[:], v[3:35]) || !decodeHex(sid[:], v[36:52]) || !decodeHex(fl[:], v[53:55]) {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(fl[0]) & trace.FlagsSampled, Remote: true})
	return sc, sc.IsValid()
}

// parseB3Single parses "traceid-spanid[-sampled[-parentspanid]]".
func parseB3Single(v []byte) (trace.SpanContext, bool) {
	var parts [4][]byte
	n := 0
	start := 0
	for i := 0; i <= len(v) && n < 4; i++ {
		if i == len(v) || v[i] == '-' {
			parts[n] = v[start:i]
			n++
			start = i + 1
		}
	}
	if n < 2 {
		return trace.SpanContext{}, false
	}
	sampled := n >= 3 && (string(parts[2]) == "1" || string(parts[2]) == "d")
	return b3(parts[0], parts[1], sampled)
}

func b3(tidHex, sidHex []byte, sampled bool) (trace.SpanContext, bool) {
	var tid trace.TraceID
	var sid trace.SpanID
	switch len(tidHex) {
	case 32:
		if !decodeHex(tid[:], tidHex) {
			return trace.SpanContext{}, false
		}
	case 16: // a 64-bit trace id, left-padded with zeros
		if !decodeHex(tid[8:], tidHex) {
			return trace.SpanContext{}, false
		}
	default:
		return trace.SpanContext{}, false
	}
	if len(sidHex) != 16 || !decodeHex(sid[:], sidHex) {
		return trace.SpanContext{}, false
	}
	var fl trace.TraceFlags
	if sampled {
		fl = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: fl, Remote: true})
	return sc, sc.IsValid()
}

func decodeHex(dst, src []byte) bool {
	for _, c := range src {
		if 'A' <= c && c <= 'F' {
			return false // W3C and B3 ids are lower-case hex
		}
	}
	n, err := hex.Decode(dst, src)
	return err == nil && n == len(dst)
}

// injectB3 writes sc as B3 headers, as Envoy's Zipkin tracer does: the
// trace id in 16 hex digits when its upper half is zero (a 64-bit trace),
// the span id, the parent's when known, and the sampling decision.
func injectB3(h *l7.Header, sc trace.SpanContext, parent trace.SpanID) {
	var b [32]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	if [8]byte(tid[:8]) == [8]byte{} {
		hex.Encode(b[:16], tid[8:])
		h.SetBytes("x-b3-traceid", b[:16])
	} else {
		hex.Encode(b[:], tid[:])
		h.SetBytes("x-b3-traceid", b[:])
	}
	hex.Encode(b[:16], sid[:])
	h.SetBytes("x-b3-spanid", b[:16])
	if parent.IsValid() {
		hex.Encode(b[:16], parent[:])
		h.SetBytes("x-b3-parentspanid", b[:16])
	} else {
		h.Del("x-b3-parentspanid")
	}
	if sc.IsSampled() {
		h.Set("x-b3-sampled", "1")
	} else {
		h.Set("x-b3-sampled", "0")
	}
}

// inject writes sc as the W3C traceparent of an upstream request.
func inject(h *l7.Header, sc trace.SpanContext) {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	fl := [1]byte{byte(sc.TraceFlags() & trace.FlagsSampled)}
	hex.Encode(b[53:55], fl[:])
	h.SetBytes("traceparent", b[:])
}

func newTraceID() trace.TraceID {
	var t trace.TraceID
	for {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			t[i], t[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
		if t.IsValid() {
			return t
		}
	}
}

func newSpanID() trace.SpanID {
	var s trace.SpanID
	for {
		a := rand.Uint64()
		for i := range 8 {
			s[i] = byte(a >> (8 * i))
		}
		if s.IsValid() {
			return s
		}
	}
}

package httpconn

import (
	"io"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/telemetry/tracing"
	"github.com/gowaypoint/waypoint/xds"
)

// Telemetry is what streams report to; every field may be nil (nothing
// is reported there). Shared by all connections; each is safe for
// concurrent use.
type Telemetry struct {
	// Metrics records the standard metrics; when nil, neither they nor
	// the Envoy-style cluster counters are counted.
	Metrics *metrics.Recorder
	Logs    *accesslog.Sinks
	Tracers *tracing.Tracers
}

// streamTelemetry is one stream's telemetry state, reused across the
// requests of an HTTP/1.1 connection. It is the stream's
// filters.Observer: it counts upstream tries per cluster and opens the
// tracing client spans.
type streamTelemetry struct {
	b        *binding
	hcm      *xds.HTTPConnectionManager // nil: nothing to report
	span     tracing.Span               // Active when the stream is traced
	stats    bool                       // count the Envoy-style cluster counters
	cluster  *metrics.ClusterStats      // of the try in flight
	reqBody  countingReader
	respBody countingReader
}

func (t *streamTelemetry) reset(b *binding, hcm *xds.HTTPConnectionManager, tm *streamTimer) {
	*t = streamTelemetry{b: b, hcm: hcm}
	t.reqBody.tm, t.reqBody.req, t.respBody.tm = tm, true, tm
}

// countingReader counts what is read through it: bytes, and on a gRPC
// stream the messages (grpcFrames). With a stream timer (tm), each read
// is the stream's activity, and the end of a request body (req) says the
// request was received whole.
type countingReader struct {
	r      io.Reader
	n      int64
	grpc   bool
	frames grpcFrames
	tm     *streamTimer
	req    bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.count(p[:n], err)
	return n, err
}

// TryRead implements l7.TryReader.
func (c *countingReader) TryRead(p []byte) (int, error) {
	n, err := l7.TryRead(c.r, p)
	c.count(p[:n], err)
	return n, err
}

func (c *countingReader) count(p []byte, err error) {
	c.n += int64(len(p))
	if c.grpc {
		c.frames.scan(p)
	}
	if c.tm != nil && (len(p) > 0 || err != nil) {
		c.tm.touch()
		if c.req && err == io.EOF {
			c.tm.requestDone()
		}
	}
}

// grpcFrames counts the messages of a gRPC body (each a 5-byte prefix,
// flags and a big-endian length, then the message) as the bytes go by, as
// Envoy's grpc_stats filter does: a message is counted when its prefix
// begins. It steps over messages without looking into them.
type grpcFrames struct {
	messages int64
	skip     uint64 // bytes left of the current message
	prefix   int    // bytes of the current prefix seen, 0 to 4
	length   uint32 // the current prefix's length so far
}

func (g *grpcFrames) scan(p []byte) {
	for len(p) > 0 {
		if g.skip > 0 {
			k := uint64(len(p))
			if k > g.skip {
				k = g.skip
			}
			g.skip -= k
			p = p[k:]
			continue
		}
		if g.prefix == 0 {
			g.messages++
			g.length = 0
		} else {
			g.length = g.length<<8 | uint32(p[0])
		}
		g.prefix++
		p = p[1:]
		if g.prefix == 5 {
			g.prefix, g.skip = 0, uint64(g.length)
		}
	}
}

// StartAttempt implements filters.Observer.
func (t *streamTelemetry) StartAttempt(s *filters.Stream, ureq *filters.UpstreamRequest) {
	if t.stats {
		cs := metrics.Cluster(ureq.Cluster)
		cs.Requests.Inc()
		if ureq.Retry {
			cs.Retries.Inc()
		}
		cs.Active.Inc()
		t.cluster = cs
	}
	if t.span.Active() {
		t.span.StartAttempt(s, ureq)
	}
}

// EndAttempt implements filters.Observer.
func (t *streamTelemetry) EndAttempt(s *filters.Stream, ureq *filters.UpstreamRequest, resp *l7.Response, err error) {
	if cs := t.cluster; cs != nil {
		t.cluster = nil
		cs.Active.Dec()
		if err != nil && status.KindOf(err) == status.Timeout {
			cs.Timeouts.Inc()
		}
	}
	if t.span.Active() {
		t.span.EndAttempt(s, ureq, resp, err)
	}
}

// begin readies a stream's telemetry once its headers are prepared: the
// request body counted, the server span started, the observer set.
func (c *conn) begin(hcm *xds.HTTPConnectionManager, s *filters.Stream, t *streamTelemetry) {
	t.reqBody.grpc, t.respBody.grpc = s.GRPC, s.GRPC
	if s.Request.Body != nil {
		t.reqBody.r = s.Request.Body
		s.Request.Body = &t.reqBody
	}
	tel := c.env.Telemetry
	if tel == nil {
		return
	}
	if tel.Tracers != nil && hcm.Tracing != nil {
		tel.Tracers.Start(hcm.Tracing, s, &t.span)
	}
	t.stats = tel.Metrics != nil
	if t.stats || t.span.Active() {
		s.Observer = t
	}
}

// countResponse makes resp's body counted while it is written; done
// puts it back (so that closing it reaches the upstream connection).
func (t *streamTelemetry) countResponse(resp *l7.Response) {
	if resp.Body == nil || resp.Status == 101 {
		return
	}
	t.respBody.r = resp.Body
	resp.Body = &t.respBody
}

// done puts the response body back and reports the stream: call it once
// the response is written (or failed), before closing the body.
func (c *conn) done(s *filters.Stream, resp *l7.Response, t *streamTelemetry) {
	if t.respBody.r != nil {
		resp.Body = t.respBody.r
	}
	if t.hcm != nil {
		c.finish(t.b, t.hcm, s, resp, t)
	}
}

// finish reports a stream: the standard metrics, the access log lines and
// the server span.
func (c *conn) finish(b *binding, hcm *xds.HTTPConnectionManager, s *filters.Stream, resp *l7.Response, t *streamTelemetry) {
	tel := c.env.Telemetry
	if tel == nil {
		return
	}
	req := s.Request
	code := resp.Status
	grpc := -1
	if s.GRPC {
		if v, ok := resp.Trailer.Get("grpc-status"); ok {
			grpc = atoi(v)
		} else if v, ok := resp.Header.Get("grpc-status"); ok {
			grpc = atoi(v)
		}
	}
	reqBytes := headerBytes(&req.Header) + int64(len(req.Method)+len(req.Path)+len(req.Authority)) + t.reqBody.n
	respBytes := headerBytes(&resp.Header) + headerBytes(&resp.Trailer) + t.respBody.n
	dur := time.Since(s.Start)
	var ls *metrics.LabelSet // the stream's metrics labels, when metrics are kept
	if tel.Metrics != nil {
		ls = tel.Metrics.LabelSet(metricsKey(b, hcm, s), destResolver{b.snap})
	}
	dims := ls != nil && hcm.Stats.HasDimensions()
	if ls != nil && !dims {
		ls.RecordHTTP(code, grpc, s.ResponseFlags, dur, reqBytes, respBytes)
		if s.GRPCMessageCounts {
			ls.RecordMessages("", t.reqBody.frames.messages, t.respBody.frames.messages)
		}
	}
	if len(hcm.AccessLog) == 0 && !t.span.Sampled() && !dims {
		return
	}
	rec := accesslog.Record{
		Start: s.Start, Duration: dur, Request: req, Response: resp, Stream: s, Downstream: s.Downstream,
		Code: code, Flags: s.ResponseFlags, BytesIn: t.reqBody.n, BytesOut: t.respBody.n,
		Cluster: s.UpstreamCluster, Host: s.UpstreamHost, Failure: s.UpstreamFailure, Details: s.ResponseCodeDetails,
	}
	if r := s.Route(); r != nil {
		rec.RouteName = r.Name()
	}
	if rec.Details == "" {
		rec.Details = accesslog.StreamDetails(s)
	}
	if dims {
		// The stats filter's tags set by expression read the record's attributes.
		d := hcm.Stats.Eval(&rec)
		ls.RecordHTTPDims(d, code, grpc, s.ResponseFlags, dur, reqBytes, respBytes)
		if s.GRPCMessageCounts {
			ls.RecordMessages(d, t.reqBody.frames.messages, t.respBody.frames.messages)
		}
	}
	if ls != nil && (t.span.Sampled() || accesslog.NeedsPeers(hcm.AccessLog)) {
		// Tracing's peer tags and a gRPC access log's peer filter state.
		rec.Source = ls.SourceField
		rec.Destination = ls.DestinationField
	}
	if tel.Logs != nil && len(hcm.AccessLog) > 0 {
		tel.Logs.Emit(hcm.AccessLog, &rec)
	}
	if t.span.Sampled() {
		t.span.End(s, &rec)
	}
}

func metricsKey(b *binding, hcm *xds.HTTPConnectionManager, s *filters.Stream) metrics.Key {
	return metrics.Key{Version: b.snap.Version, Protocol: protocolOf(s), PeerURI: s.Downstream.PeerURI,
		Baggage: s.Downstream.Baggage, Cluster: s.UpstreamCluster, Host: s.UpstreamHost, MutualTLS: s.Downstream.PeerURI != "",
		Overrides: hcm.Stats}
}

func protocolOf(s *filters.Stream) metrics.Protocol {
	switch {
	case s.Request.Proto == l7.Dubbo:
		return metrics.Dubbo
	case s.GRPC:
		return metrics.GRPC
	}
	return metrics.HTTP
}

// destResolver finds a request's destination labels in its snapshot: the
// endpoint's istio workload, the cluster's istio services, the endpoint's
// expected identity. A single pointer, so passing it as an interface does
// not allocate.
type destResolver struct{ snap *xds.Snapshot }

// Destination implements metrics.Resolver.
func (d destResolver) Destination(k metrics.Key) metrics.Destination {
	return upstream.DestinationLabels(d.snap, k.Cluster, k.Host)
}

// headerBytes is a header block's size as Envoy counts it: names and
// values.
func headerBytes(h *l7.Header) int64 {
	n := 0
	for _, f := range h.Fields() {
		n += len(f.Name) + len(f.Value)
	}
	return int64(n)
}

func atoi(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' || n > 1<<20 {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

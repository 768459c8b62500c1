package dubboconn

import (
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// A call is reported as an HTTP request is (see docs/dubbo.md,
// Telemetry):
//
//   - Istio's standard metrics with request_protocol="dubbo"; response_code
//     is the HTTP equivalent of the answer: for a provider's answer,
//     protocols/status's mapping of its Dubbo status (20 is 200, 40 400,
//     60 404, 31 504, 100 503, 80 500...), for the waypoint's own answer
//     the HTTP status of its local reply (403 a denial, 404 no route, 503
//     no healthy upstream, 504 a timeout), whose Dubbo status is what the
//     consumer got; grpc_response_status is empty. A one-way call counts
//     200 once it is sent. The sizes are the frames' (16-byte header and
//     body): the consumer's request, the answer written back (0 for a
//     one-way call).
//   - The Envoy-style cluster counters, per try (the router's Observer).
//   - A line per call in the access logs of the listener, if it has any
//     (DubboProxy has no access_log of its own): the call in the request
//     model (%REQ(:METHOD)% the Dubbo method, %REQ(:PATH)%
//     /interface/method, %REQ(X)% an attachment, %PROTOCOL% "dubbo"), the
//     answer's Dubbo status as %RESP(:DUBBO-STATUS)%.
//
// There is no tracing: Envoy has none for Dubbo, and a DubboProxy has no
// tracing config to say where spans would go.

// callTelemetry is a call's telemetry state, part of the pooled call. It is
// the stream's filters.Observer while the Envoy-style counters are kept.
type callTelemetry struct {
	cluster *metrics.ClusterStats // of the try in flight
	// status is the Dubbo status the consumer was answered with (0: none,
	// a one-way call); bytesOut what was written back.
	status   uint8
	bytesOut int64
}

// StartAttempt implements filters.Observer.
func (t *callTelemetry) StartAttempt(s *filters.Stream, ureq *filters.UpstreamRequest) {
	cs := metrics.Cluster(ureq.Cluster)
	cs.Requests.Inc()
	if ureq.Retry {
		cs.Retries.Inc()
	}
	cs.Active.Inc()
	t.cluster = cs
}

// EndAttempt implements filters.Observer.
func (t *callTelemetry) EndAttempt(s *filters.Stream, ureq *filters.UpstreamRequest, resp *l7.Response, err error) {
	cs := t.cluster
	if cs == nil {
		return
	}
	t.cluster = nil
	cs.Active.Dec()
	if err != nil && status.KindOf(err) == status.Timeout {
		cs.Timeouts.Inc()
	}
}

// begin readies the call's telemetry before its chain runs.
func (cl *call) begin() {
	cl.tel = callTelemetry{}
	if cl.c.env.Metrics != nil {
		cl.s.Observer = &cl.tel
	}
}

// finish reports the call once its answer is written (or it got none).
func (cl *call) finish() {
	env := cl.c.env
	logs := cl.b.dubbo != nil && env.Logs != nil && len(cl.b.dubbo.AccessLog) > 0
	if env.Metrics == nil && !logs {
		return
	}
	s := &cl.s
	code := cl.responseCode()
	dur := time.Since(s.Start)
	bytesIn := int64(len(cl.frame.Raw))
	var ls *metrics.LabelSet
	if env.Metrics != nil {
		ls = env.Metrics.LabelSet(cl.metricsKey(), destResolver{cl.b.snap})
		ls.RecordHTTP(code, -1, s.ResponseFlags, dur, bytesIn, cl.tel.bytesOut)
	}
	if !logs {
		return
	}
	rec := accesslog.Record{
		Start: s.Start, Duration: dur, Request: &cl.req, Response: cl.loggedResponse(code), Stream: s, Downstream: s.Downstream,
		Code: code, Flags: s.ResponseFlags, BytesIn: bytesIn, BytesOut: cl.tel.bytesOut,
		Cluster: s.UpstreamCluster, Host: s.UpstreamHost, Failure: s.UpstreamFailure, Details: s.ResponseCodeDetails,
	}
	if r := s.Route(); r != nil {
		rec.RouteName = r.Name()
	}
	if rec.Details == "" {
		rec.Details = accesslog.StreamDetails(s)
	}
	if ls != nil {
		rec.Source, rec.Destination = ls.SourceField, ls.DestinationField
	}
	env.Logs.Emit(cl.b.dubbo.AccessLog, &rec)
}

// responseCode is response_code and %RESPONSE_CODE%: the HTTP equivalent
// of the answer (see the top of this file).
func (cl *call) responseCode() int {
	s := &cl.s
	switch {
	case s.Local != nil:
		return s.Local.Status
	case s.Response != nil:
		return s.Response.Status
	}
	return 0
}

// loggedResponse is the response an access log line reads: the provider's
// (with its :dubbo-status), or for a local reply one carrying the status
// the consumer got.
func (cl *call) loggedResponse(code int) *l7.Response {
	s := &cl.s
	if s.Local == nil {
		return s.Response
	}
	r := &cl.resp
	r.Reset()
	r.Proto, r.Status = l7.Dubbo, code
	if cl.tel.status != 0 {
		r.Header.AddBytes(nameStatus, statusBytes[cl.tel.status])
	}
	return r
}

func (cl *call) metricsKey() metrics.Key {
	s, d := &cl.s, cl.c.down
	var ov *metrics.Overrides
	if cl.b.dubbo != nil {
		ov = cl.b.dubbo.Stats
	}
	return metrics.Key{Version: cl.b.snap.Version, Protocol: metrics.Dubbo, PeerURI: d.PeerURI, Baggage: d.Baggage,
		Cluster: s.UpstreamCluster, Host: s.UpstreamHost, MutualTLS: d.PeerURI != "", Overrides: ov}
}

// destResolver finds a call's destination labels in its snapshot: the
// endpoint's istio workload, the cluster's istio services, the endpoint's
// expected identity. A single pointer, so passing it as an interface does
// not allocate.
type destResolver struct{ snap *xds.Snapshot }

// Destination implements metrics.Resolver.
func (d destResolver) Destination(k metrics.Key) metrics.Destination {
	return upstream.DestinationLabels(d.snap, k.Cluster, k.Host)
}

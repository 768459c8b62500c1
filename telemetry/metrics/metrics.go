// Package metrics records Istio's standard metrics as a waypoint reports
// them (reporter="waypoint"), with Istio's labels and Envoy's default
// histogram buckets, in the process's registry (telemetry/stats):
//
//	istio_requests_total, istio_request_duration_milliseconds,
//	istio_request_bytes, istio_response_bytes            HTTP, gRPC, Dubbo
//	istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
//	istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total   TCP chains
//	istio_request_messages_total, istio_response_messages_total  gRPC streams
//
// The gRPC message counts carry the peers' labels only (no protocol,
// security, response code or flags), as Istio's filter counts them while
// a stream runs; the waypoint counts them when the stream ends, for a
// chain whose grpc_stats filter emits them (filters.Stream.GRPCMessageCounts).
//
// The cost per request is bounded: the labels that do not change from one
// request to the next (source, destination, protocol, security) are
// resolved once per Key (config version, protocol, peer, baggage,
// cluster, endpoint) and cached with the Prometheus children of every
// response code, gRPC status and flag set seen for it; a request then
// costs two map lookups and the observations, without allocation. The
// number of distinct label sets is capped (DefaultMaxSeries): past it a
// new combination is not recorded and waypoint_metrics_overflow_total
// counts it. A chain whose stats filter sets tags by expression
// (Overrides.Eval) pays for the evaluation and keys its series by the
// values too; the others pay nothing for it.
package metrics

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Protocol is request_protocol.
type Protocol uint8

// The protocols Istio labels.
const (
	HTTP Protocol = iota
	GRPC
	TCP
	Dubbo
)

func (p Protocol) String() string {
	switch p {
	case GRPC:
		return "grpc"
	case TCP:
		return "tcp"
	case Dubbo:
		return "dubbo"
	}
	return "http"
}

// Key is what the static labels of a request depend on. Comparable, so a
// lookup does not allocate.
type Key struct {
	// Version is the config version: label sets of an older config are
	// resolved again (endpoint metadata may have changed).
	Version  string
	Protocol Protocol
	// PeerURI and Baggage describe the source (filters.Downstream).
	PeerURI, Baggage string
	// Cluster and Host are the upstream cluster and endpoint ("" and zero
	// when the request never reached one).
	Cluster string
	Host    netip.AddrPort
	// MutualTLS is connection_security_policy="mutual_tls" (an HBONE
	// peer), else "none".
	MutualTLS bool
	// Overrides are the chain's stats filter overrides (nil: none).
	Overrides *Overrides
}

// Destination is what a resolver finds for a Key's cluster and endpoint.
type Destination struct {
	Peer    Peer
	Service Service
}

// Resolver finds the destination of a Key, on a cache miss.
type Resolver interface {
	Destination(k Key) Destination
}

// DefaultMaxSeries bounds the distinct label sets recorded.
const DefaultMaxSeries = 10000

// labelNames are Istio's standard labels, in Istio's order; the last four
// vary per request.
var labelNames = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
	"destination_version", "destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol", "connection_security_policy",
	"response_code", "grpc_response_status", "response_flags",
}

var tcpLabelNames = labelNames[:len(labelNames)-3]

// messageLabelNames are the labels of the gRPC message counts: the peers'
// only, as Istio's filter counts them while the stream runs.
var messageLabelNames = labelNames[:len(labelNames)-5]

// labelNamesOf returns metric m's standard labels.
func labelNamesOf(m metric) []string {
	switch {
	case m >= mRequestMessages:
		return messageLabelNames
	case m >= mTCPOpened:
		return tcpLabelNames
	}
	return labelNames
}

// Buckets are Envoy's default histogram buckets, which Istio's standard
// histograms use (milliseconds for durations, bytes for sizes).
var Buckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Recorder records the standard metrics. Safe for concurrent use.
type Recorder struct {
	requests                      *prometheus.CounterVec
	duration, reqBytes, respBytes *prometheus.HistogramVec
	tcpOpened, tcpClosed          *prometheus.CounterVec
	tcpSent, tcpReceived          *prometheus.CounterVec
	reqMessages, respMessages     *prometheus.CounterVec
	overflow                      prometheus.Counter
	maxSeries                     int

	mu      sync.RWMutex
	version string              // of the sets; guarded by mu
	sets    map[Key]*LabelSet   // guarded by mu
	seen    map[string]struct{} // label values ever created; guarded by mu

	// added holds the families of metrics with added tags (see vec).
	added addedFamilies
}

// addedFamilies are the standard metrics with tags added by a stats
// filter's dimensions: one vector per metric and label set, keyed by the
// metric and its added tags. A registry's collector must describe one
// label set per metric name, so these are collected by an unchecked
// collector (it describes nothing) into the same families: a family then
// holds series of both label sets, as Envoy's own Prometheus output does
// when chains' stats filters differ. Prometheus takes a label a series
// lacks as empty.
type addedFamilies struct {
	mu   sync.Mutex
	vecs map[string]prometheus.Collector // guarded by mu
}

func (a *addedFamilies) Describe(chan<- *prometheus.Desc) {}

func (a *addedFamilies) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	vecs := make([]prometheus.Collector, 0, len(a.vecs))
	for _, v := range a.vecs {
		vecs = append(vecs, v)
	}
	a.mu.Unlock()
	for _, v := range vecs {
		v.Collect(ch)
	}
}

// counter returns metric m's series of the label values (labelNames or
// tcpLabelNames, then ov's added tags): in the registered family, or with
// added tags in one of addedFamilies.
func (r *Recorder) counter(m metric, ov *Overrides, values []string) prometheus.Counter {
	var v *prometheus.CounterVec
	switch m {
	case mRequests:
		v = r.requests
	case mTCPOpened:
		v = r.tcpOpened
	case mTCPClosed:
		v = r.tcpClosed
	case mTCPSent:
		v = r.tcpSent
	case mTCPReceived:
		v = r.tcpReceived
	case mRequestMessages:
		v = r.reqMessages
	default:
		v = r.respMessages
	}
	if ov != nil && len(ov.added[m]) > 0 {
		v = addedVec(&r.added, m, ov, func(names []string) *prometheus.CounterVec {
			return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + metricNames[m], Help: helps[m]}, names)
		})
	}
	return v.WithLabelValues(values...)
}

// observer is counter for the histograms.
func (r *Recorder) observer(m metric, ov *Overrides, values []string) prometheus.Observer {
	var v *prometheus.HistogramVec
	switch m {
	case mDuration:
		v = r.duration
	case mRequestBytes:
		v = r.reqBytes
	default:
		v = r.respBytes
	}
	if ov != nil && len(ov.added[m]) > 0 {
		v = addedVec(&r.added, m, ov, func(names []string) *prometheus.HistogramVec {
			return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_" + metricNames[m], Help: helps[m], Buckets: Buckets}, names)
		})
	}
	return v.WithLabelValues(values...)
}

// addedVec returns metric m's vector with ov's added tags, made by mk with
// its label names on first use.
func addedVec[V prometheus.Collector](a *addedFamilies, m metric, ov *Overrides, mk func(names []string) V) V {
	key := metricNames[m] + "\x00" + strings.Join(ov.added[m], "\x00")
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.vecs[key]; ok {
		return v.(V)
	}
	v := mk(append(slices.Clip(labelNamesOf(m)), ov.added[m]...))
	if a.vecs == nil {
		a.vecs = map[string]prometheus.Collector{}
	}
	a.vecs[key] = v
	return v
}

// helps are the standard metrics' help texts.
var helps = [numMetrics]string{
	"Requests, by Istio's standard labels.",
	"Request duration in milliseconds, from the request's headers to the response's end.",
	"Request sizes (headers and body) in bytes.",
	"Response sizes (headers and body) in bytes.",
	"TCP connections opened.",
	"TCP connections closed.",
	"Bytes sent to the downstream on TCP connections.",
	"Bytes received from the downstream on TCP connections.",
	"gRPC messages received from the downstream.",
	"gRPC messages sent to the downstream.",
}

// Default is the process's recorder, on stats.Registry.
var Default = New(stats.Registry, DefaultMaxSeries)

// New registers the standard metrics in reg (an existing registration of
// the same families is reused) and returns a recorder capped at maxSeries
// label sets.
func New(reg prometheus.Registerer, maxSeries int) *Recorder {
	r := &Recorder{maxSeries: maxSeries, sets: map[Key]*LabelSet{}, seen: map[string]struct{}{}}
	r.requests = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: helps[mRequests]}, labelNames))
	hist := func(m metric) *prometheus.HistogramVec {
		return register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_" + metricNames[m], Help: helps[m], Buckets: Buckets}, labelNames))
	}
	r.duration = hist(mDuration)
	r.reqBytes = hist(mRequestBytes)
	r.respBytes = hist(mResponseBytes)
	tcp := func(m metric) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + metricNames[m], Help: helps[m]}, labelNamesOf(m)))
	}
	r.tcpOpened = tcp(mTCPOpened)
	r.tcpClosed = tcp(mTCPClosed)
	r.tcpSent = tcp(mTCPSent)
	r.tcpReceived = tcp(mTCPReceived)
	r.reqMessages = tcp(mRequestMessages)
	r.respMessages = tcp(mResponseMessages)
	if err := reg.Register(&r.added); err != nil {
		panic(err)
	}
	r.overflow = register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "waypoint_metrics_overflow_total",
		Help: "Observations not recorded because the standard metrics reached their cap of distinct label sets."}))
	return r
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(C)
		}
		panic(err)
	}
	return c
}

// LabelSet is one Key's static labels with the series made for it so far.
type LabelSet struct {
	r        *Recorder
	ov       *Overrides
	src, dst Peer
	svc      Service
	static   []string // values of labelNames up to connection_security_policy

	mu      sync.RWMutex
	results map[result]*httpSeries // guarded by mu
	tcp     *tcpSeries             // guarded by mu
	tcpDims map[Dims]*tcpSeries    // of connections with dimensions; guarded by mu
	msgs    map[Dims]*msgSeries    // gRPC message counts; guarded by mu
}

type result struct {
	code  int
	grpc  int // -1: none
	flags filters.Flags
	dims  Dims // the dimensions' values: "" without any
}

// httpSeries and tcpSeries hold a result's series; a metric the overrides
// drop is nil.
type httpSeries struct {
	requests                      prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

type tcpSeries struct {
	opened, closed, sent, received prometheus.Counter
}

type msgSeries struct {
	request, response prometheus.Counter
}

// LabelSet returns k's label set, resolving the destination with res the
// first time (it runs under no lock of the recorder and may be called
// more than once under contention).
func (r *Recorder) LabelSet(k Key, res Resolver) *LabelSet {
	r.mu.RLock()
	ls := r.sets[k]
	r.mu.RUnlock()
	if ls != nil {
		return ls
	}
	d := res.Destination(k)
	ls = &LabelSet{r: r, ov: k.Overrides, src: SourcePeer(k.PeerURI, k.Baggage), dst: d.Peer.orUnknown(), svc: d.Service.orUnknown(),
		results: map[result]*httpSeries{}}
	ls.static = ls.staticLabels(k)
	r.mu.Lock()
	defer r.mu.Unlock()
	if k.Version != r.version {
		r.version = k.Version
		clear(r.sets)
	}
	if old := r.sets[k]; old != nil {
		return old
	}
	if len(r.sets) >= r.maxSeries {
		clear(r.sets) // a bound on the cache; the series themselves stay
	}
	r.sets[k] = ls
	return ls
}

func (ls *LabelSet) staticLabels(k Key) []string {
	src, dst, svc := ls.src, ls.dst, ls.svc
	sec := "none"
	if k.MutualTLS {
		sec = "mutual_tls"
	}
	return []string{
		"waypoint",
		src.Workload, src.Namespace, src.Principal, src.App, src.Version, src.CanonicalService, src.CanonicalRevision, src.Cluster,
		dst.Workload, dst.Namespace, dst.Principal, dst.App, dst.Version, svc.Host, svc.Name, svc.Namespace,
		dst.CanonicalService, dst.CanonicalRevision, dst.Cluster,
		k.Protocol.String(), sec,
	}
}

// admit reports whether a new combination of label values may be created,
// counting it against the cap; an overflow is counted.
func (r *Recorder) admit(values []string, dims Dims) bool {
	id := strings.Join(values, "\x00") + "\x01" + string(dims)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[id]; ok {
		return true
	}
	if len(r.seen) >= r.maxSeries {
		return false
	}
	r.seen[id] = struct{}{}
	return true
}

// RecordHTTP records one request: its response code, gRPC status (-1 for
// none), response flags, duration and sizes.
func (ls *LabelSet) RecordHTTP(code, grpcStatus int, flags filters.Flags, d time.Duration, reqBytes, respBytes int64) {
	ls.RecordHTTPDims("", code, grpcStatus, flags, d, reqBytes, respBytes)
}

// RecordHTTPDims is RecordHTTP for a request whose chain sets tags by
// expression, with their values (the Key's Overrides.Eval).
func (ls *LabelSet) RecordHTTPDims(dims Dims, code, grpcStatus int, flags filters.Flags, d time.Duration, reqBytes, respBytes int64) {
	if ls == nil {
		return
	}
	res := result{code: code, grpc: grpcStatus, flags: flags, dims: dims}
	ls.mu.RLock()
	s := ls.results[res]
	ls.mu.RUnlock()
	if s == nil {
		if s = ls.newSeries(res); s == nil {
			ls.r.overflow.Inc()
			return
		}
	}
	// The count last: a scrape that sees the request counted sees its
	// duration and sizes too.
	if s.duration != nil {
		s.duration.Observe(float64(d) / float64(time.Millisecond))
	}
	if s.reqBytes != nil {
		s.reqBytes.Observe(float64(reqBytes))
	}
	if s.respBytes != nil {
		s.respBytes.Observe(float64(respBytes))
	}
	if s.requests != nil {
		s.requests.Inc()
	}
}

func (ls *LabelSet) newSeries(res result) *httpSeries {
	grpc := ""
	if res.grpc >= 0 {
		grpc = strconv.Itoa(res.grpc)
	}
	fl := res.flags.String()
	if fl == "" {
		fl = "-"
	}
	values := append(append([]string(nil), ls.static...), strconv.Itoa(res.code), grpc, fl)
	if !ls.r.admit(values, res.dims) {
		return nil
	}
	r, ov := ls.r, ls.ov
	var dims []string
	if ov != nil {
		dims = res.dims.split(len(ov.exprs))
	}
	s := &httpSeries{}
	if !ov.dropped(mRequests) {
		s.requests = r.counter(mRequests, ov, ov.values(mRequests, values, dims))
	}
	if !ov.dropped(mDuration) {
		s.duration = r.observer(mDuration, ov, ov.values(mDuration, values, dims))
	}
	if !ov.dropped(mRequestBytes) {
		s.reqBytes = r.observer(mRequestBytes, ov, ov.values(mRequestBytes, values, dims))
	}
	if !ov.dropped(mResponseBytes) {
		s.respBytes = r.observer(mResponseBytes, ov, ov.values(mResponseBytes, values, dims))
	}
	ls.mu.Lock()
	if old := ls.results[res]; old != nil {
		s = old
	} else {
		ls.results[res] = s
	}
	ls.mu.Unlock()
	return s
}

func (ls *LabelSet) tcpSeries(dims Dims) *tcpSeries {
	ls.mu.RLock()
	s := ls.tcp
	if dims != "" {
		s = ls.tcpDims[dims]
	}
	ls.mu.RUnlock()
	if s != nil {
		return s
	}
	if !ls.r.admit(ls.static, dims) {
		return nil
	}
	r, ov := ls.r, ls.ov
	var dv []string
	if ov != nil {
		dv = dims.split(len(ov.exprs))
	}
	s = &tcpSeries{}
	if !ov.dropped(mTCPOpened) {
		s.opened = r.counter(mTCPOpened, ov, ov.values(mTCPOpened, ls.static, dv))
	}
	if !ov.dropped(mTCPClosed) {
		s.closed = r.counter(mTCPClosed, ov, ov.values(mTCPClosed, ls.static, dv))
	}
	if !ov.dropped(mTCPSent) {
		s.sent = r.counter(mTCPSent, ov, ov.values(mTCPSent, ls.static, dv))
	}
	if !ov.dropped(mTCPReceived) {
		s.received = r.counter(mTCPReceived, ov, ov.values(mTCPReceived, ls.static, dv))
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if dims == "" {
		if ls.tcp == nil {
			ls.tcp = s
		}
		return ls.tcp
	}
	if old := ls.tcpDims[dims]; old != nil {
		return old
	}
	if ls.tcpDims == nil {
		ls.tcpDims = map[Dims]*tcpSeries{}
	}
	ls.tcpDims[dims] = s
	return s
}

// TCPOpened counts a TCP connection opened.
func (ls *LabelSet) TCPOpened() { ls.TCPOpenedDims("") }

// TCPOpenedDims is TCPOpened for a connection whose chain sets tags by
// expression, with their values (the Key's Overrides.Eval on the
// connection's record); TCPClosedDims takes the same.
func (ls *LabelSet) TCPOpenedDims(dims Dims) {
	if ls == nil {
		return
	}
	if s := ls.tcpSeries(dims); s != nil {
		if s.opened != nil {
			s.opened.Inc()
		}
		return
	}
	ls.r.overflow.Inc()
}

// TCPClosed counts a TCP connection closed with the bytes it carried:
// sent to the downstream and received from it.
func (ls *LabelSet) TCPClosed(sent, received int64) { ls.TCPClosedDims("", sent, received) }

// TCPClosedDims is TCPClosed with the connection's dimensions (see
// TCPOpenedDims).
func (ls *LabelSet) TCPClosedDims(dims Dims, sent, received int64) {
	if ls == nil {
		return
	}
	s := ls.tcpSeries(dims)
	if s == nil {
		ls.r.overflow.Inc()
		return
	}
	// The bytes first: a scrape that sees the connection closed sees
	// everything it carried.
	if s.sent != nil {
		s.sent.Add(float64(sent))
	}
	if s.received != nil {
		s.received.Add(float64(received))
	}
	if s.closed != nil {
		s.closed.Inc()
	}
}

// RecordMessages counts a gRPC stream's messages: received from the
// downstream and sent to it. dims are the stream's dimensions ("" when its
// chain sets no tag by expression), as for RecordHTTPDims.
func (ls *LabelSet) RecordMessages(dims Dims, request, response int64) {
	if ls == nil {
		return
	}
	ls.mu.RLock()
	s := ls.msgs[dims]
	ls.mu.RUnlock()
	if s == nil {
		if s = ls.newMessageSeries(dims); s == nil {
			ls.r.overflow.Inc()
			return
		}
	}
	if s.request != nil {
		s.request.Add(float64(request))
	}
	if s.response != nil {
		s.response.Add(float64(response))
	}
}

func (ls *LabelSet) newMessageSeries(dims Dims) *msgSeries {
	values := ls.static[:len(messageLabelNames)]
	if !ls.r.admit(values, dims) {
		return nil
	}
	r, ov := ls.r, ls.ov
	var dv []string
	if ov != nil {
		dv = dims.split(len(ov.exprs))
	}
	s := &msgSeries{}
	if !ov.dropped(mRequestMessages) {
		s.request = r.counter(mRequestMessages, ov, ov.values(mRequestMessages, values, dv))
	}
	if !ov.dropped(mResponseMessages) {
		s.response = r.counter(mResponseMessages, ov, ov.values(mResponseMessages, values, dv))
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if old := ls.msgs[dims]; old != nil {
		return old
	}
	if ls.msgs == nil {
		ls.msgs = map[Dims]*msgSeries{}
	}
	ls.msgs[dims] = s
	return s
}

// SourceField and DestinationField return a peer's field by the names of
// Istio's peer metadata objects (app, version, service, revision,
// cluster, namespace, workload, name, type), for access logs and tracing
// tags; "" for an unknown field.
func (ls *LabelSet) SourceField(name string) string      { return field(&ls.src, name) }
func (ls *LabelSet) DestinationField(name string) string { return field(&ls.dst, name) }

func field(p *Peer, name string) string {
	switch name {
	case "app":
		return p.App
	case "version":
		return p.Version
	case "service":
		return p.CanonicalService
	case "revision":
		return p.CanonicalRevision
	case "cluster":
		return p.Cluster
	case "namespace":
		return p.Namespace
	case "workload", "name":
		return p.Workload
	case "type":
		return "deployment"
	}
	return ""
}

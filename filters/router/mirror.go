package router

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Request mirroring (a route's request_mirror_policies), as Envoy's
// shadowing: for each policy that fires, a copy of the request goes to
// the policy's cluster, fire-and-forget. The copy is taken after the
// route's header mutations and rewrites, with "-shadow" appended to the
// authority's host unless disable_shadow_host_suffix_append. The mirror
// never slows or fails the primary: it runs on its own goroutine, its
// response is discarded, and its failure is only counted and logged at
// debug level. It is not a try of the stream: the stream's telemetry
// (istio_requests_total, the cluster stats the connection manager
// counts, access logs, spans) records the primary only; mirrors are
// counted in waypoint_router_mirror_requests_total by cluster and result.
//
// Body. The primary reads the request body as it streams it; a tee keeps
// a copy, up to MirrorBodyLimit (1 MiB, Envoy's default buffer limit). The
// copies go out when the body has ended, with the whole body, as Envoy's
// buffered shadow does; a request without a body is mirrored at once. A
// body larger than the limit is not mirrored at all (Envoy drops its
// shadows when the body overflows the buffer), nor is one the primary did
// not read to its end before the stream ended (result "incomplete").
// Upgrades and CONNECT are not mirrored.
//
// Bounds. At most MaxMirrors copies per router are in flight, counting
// those waiting for their body (a long gRPC stream holds its slot until it
// ends), so the bodies kept are at most MaxMirrors × MirrorBodyLimit per
// router; a mirror that finds no slot free is dropped (result
// "overflow"). Each copy is bounded by the route timeout, or
// DefaultMirrorTimeout when the route has none (istiod's routes have
// none, which in Envoy leaves a shadow unbounded). The goroutines belong
// to the router: Close (the config is replaced, or the waypoint shuts
// down) cancels those in flight and waits for them, so a push cuts the
// mirrors of the config it replaces (Envoy's outlive it); streams still
// running on a closed router are not mirrored (result "closed").

// Mirroring bounds.
const (
	// MirrorBodyLimit is the most of a request body a mirror copies; a
	// larger body is not mirrored.
	MirrorBodyLimit = 1 << 20
	// MaxMirrors bounds the mirrors in flight per router.
	MaxMirrors = 64
	// DefaultMirrorTimeout bounds a mirror whose route has no timeout.
	DefaultMirrorTimeout = route.DefaultTimeout
)

// Results of waypoint_router_mirror_requests_total.
const (
	mirrorOK          = "ok"             // the mirror's response headers came
	mirrorFailed      = "failed"         // the mirror failed (no cluster, connect failure, reset, timeout)
	mirrorOverflow    = "overflow"       // MaxMirrors were in flight
	mirrorBodyTooBig  = "body_too_large" // the body outgrew MirrorBodyLimit
	mirrorIncomplete  = "incomplete"     // the stream ended before its body
	mirrorShutDown    = "closed"         // the router was closed
	mirrorMetricsName = "waypoint_router_mirror_requests_total"
)

// mirrors owns a router's mirror goroutines. Built by New; read-only
// fields apart from those under mu.
type mirrors struct {
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	slots  chan struct{} // one token per mirror in flight
	log    *slog.Logger
	count  *prometheus.CounterVec // cluster_name, result

	mu     sync.Mutex // guards closed and the wg.Add that start makes
	closed bool
	wg     sync.WaitGroup
}

func newMirrors(ctx filters.BuildContext) (*mirrors, error) {
	count, err := ctx.Stats.CounterVec(prometheus.CounterOpts{Name: mirrorMetricsName,
		Help: "Requests mirrored by the router (request_mirror_policies), by mirror cluster and result."},
		"cluster_name", "result")
	if err != nil {
		return nil, err
	}
	log := ctx.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, cancel := context.WithCancel(context.Background())
	return &mirrors{ctx: c, cancel: cancel, slots: make(chan struct{}, MaxMirrors), log: log, count: count}, nil
}

// close cancels the mirrors in flight and waits for them; later mirrors
// are not sent.
func (m *mirrors) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// shot is one copy to send: a request of its own, owned by the mirror.
type shot struct {
	cluster string
	req     *l7.Request
}

// mirror starts the copies of s's request that rt's policies select:
// at once for a request without a body, else once the primary has read
// the body (through a tee that replaces s.Request.Body). Called on the
// stream's goroutine after the route's mutations, before the first try.
func (m *mirrors) mirror(s *filters.Stream, rt *route.Route, policies []route.MirrorPolicy) {
	req := s.Request
	if req.Protocol != "" || req.Method == "CONNECT" {
		return
	}
	var shots []shot
	for i := range policies {
		p := &policies[i]
		if !p.Fires(rand.Uint64()) {
			continue
		}
		cluster, ok := p.TargetCluster(req)
		if !ok {
			continue
		}
		select {
		case m.slots <- struct{}{}:
		default:
			m.count.WithLabelValues(cluster, mirrorOverflow).Inc()
			continue
		}
		shots = append(shots, shot{cluster: cluster, req: copyRequest(req, p)})
	}
	if len(shots) == 0 {
		return
	}
	timeout := rt.Timeout()
	if timeout <= 0 {
		timeout = DefaultMirrorTimeout
	}
	send := sender{m: m, up: s.Upstream, timeout: timeout}
	if s.Downstream != nil {
		d := *s.Downstream // the connection's, which may end (and be reused) before the mirror
		send.down = &d
	}
	if req.Body == nil {
		send.all(shots, nil)
		return
	}
	t := &tee{src: req.Body, req: req, shots: shots, send: send}
	req.Body = t
	s.OnEnd(t.abandon)
}

// copyRequest copies what a mirror sends of req: everything but the body
// (added when it has ended), the authority per the policy.
func copyRequest(req *l7.Request, p *route.MirrorPolicy) *l7.Request {
	c := &l7.Request{Method: req.Method, Scheme: req.Scheme, Proto: req.Proto,
		Path: bytes.Clone(req.Path), Authority: p.ShadowAuthority(nil, req.Authority)}
	c.Header.CopyFrom(&req.Header)
	return c
}

// sender starts mirror goroutines.
type sender struct {
	m       *mirrors
	up      filters.Upstream
	down    *filters.Downstream
	timeout time.Duration
}

// all sends every shot with body (empty: none), each on its own goroutine;
// each shot holds a slot, which its goroutine gives back.
func (sn sender) all(shots []shot, body []byte) {
	m := sn.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sh := range shots {
		if m.closed || sn.up == nil {
			sn.drop(sh, mirrorShutDown)
			continue
		}
		if len(body) > 0 {
			sh.req.Body = bytes.NewReader(body)
		}
		sh.req.ContentLength = int64(len(body))
		m.wg.Add(1)
		go sn.run(sh)
	}
}

// drop gives back the slot of a shot not sent, counting why.
func (sn sender) drop(sh shot, result string) {
	sn.m.count.WithLabelValues(sh.cluster, result).Inc()
	<-sn.m.slots
}

// run sends one mirror and discards its response.
func (sn sender) run(sh shot) {
	m := sn.m
	defer m.wg.Done()
	defer func() { <-m.slots }()
	ureq := filters.UpstreamRequest{Cluster: sh.cluster, Request: sh.req, Downstream: sn.down,
		Deadline: time.Now().Add(sn.timeout)}
	resp, err := sn.up.RoundTrip(m.ctx, &ureq)
	if err != nil {
		m.count.WithLabelValues(sh.cluster, mirrorFailed).Inc()
		m.log.Debug("mirror failed", "cluster", sh.cluster, "authority", string(sh.req.Authority), "error", err)
		return
	}
	m.count.WithLabelValues(sh.cluster, mirrorOK).Inc()
	drainResponse(resp)
}

// drainResponse reads a little of a discarded response, so that a short
// one leaves its connection reusable, then closes it.
func drainResponse(resp *l7.Response) {
	if resp.Body == nil {
		return
	}
	io.CopyN(io.Discard, resp.Body, 64<<10)
	if c, ok := resp.Body.(io.Closer); ok {
		c.Close()
	}
}

// tee is the request body as the primary reads it, keeping a copy for
// the mirrors; when the body ends within MirrorBodyLimit the mirrors go
// out with it. Reads may come from the upstream's body pump, another
// goroutine than the stream's; abandon comes from the stream's end.
type tee struct {
	src  io.Reader
	req  *l7.Request // for its trailers, at the end of the body
	send sender

	mu    sync.Mutex // guards the fields below
	buf   []byte
	shots []shot // nil once sent or dropped
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	t.record(p[:n], err)
	return n, err
}

// TryRead implements l7.TryReader.
func (t *tee) TryRead(p []byte) (int, error) {
	n, err := l7.TryRead(t.src, p)
	t.record(p[:n], err)
	return n, err
}

func (t *tee) record(p []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shots == nil {
		return
	}
	if len(t.buf)+len(p) > MirrorBodyLimit {
		t.dropLocked(mirrorBodyTooBig)
		return
	}
	t.buf = append(t.buf, p...)
	switch {
	case err == io.EOF:
		for _, sh := range t.shots {
			if t.req.Trailer.Len() > 0 {
				sh.req.Trailer.CopyFrom(&t.req.Trailer)
			}
		}
		shots, body := t.shots, t.buf
		t.shots, t.buf = nil, nil
		t.send.all(shots, body)
	case err != nil:
		t.dropLocked(mirrorIncomplete)
	}
}

// abandon drops the mirrors whose body did not end with the stream.
func (t *tee) abandon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shots != nil {
		t.dropLocked(mirrorIncomplete)
	}
}

func (t *tee) dropLocked(result string) {
	for _, sh := range t.shots {
		t.send.drop(sh, result)
	}
	t.shots, t.buf = nil, nil
}

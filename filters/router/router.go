// Package router is Envoy's router filter, envoy.filters.http.router: the
// terminal filter of every HTTP chain. It takes the route the stream
// matched (package route), answers redirects and direct responses itself,
// and otherwise sends the request to the route's cluster through the
// stream's Upstream, with the route's header mutations and rewrites,
// timeouts (the route timeout covers every try; per_try_timeout each one;
// grpc-timeout when the route honours it) and retry policy (Envoy's
// conditions, jittered exponential back-off, previous_hosts, and no retry
// once the request body outgrew the retry buffer or a response was
// accepted), and sends the route's request mirrors (mirror.go).
package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Name and TypeURL identify the filter in an HttpConnectionManager.
const (
	Name    = "envoy.filters.http.router"
	TypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
)

// DefaultRetryBufferLimit is how much of a request body is kept for
// retries (Envoy's default per-connection buffer limit, 1 MiB): a request
// whose body outgrows it is not retried.
const DefaultRetryBufferLimit = 1 << 20

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.router.v3.Router": pbcheck.F("suppress_envoy_headers", "dynamic_stats", "start_child_span"),
}

// New builds the router from its config (nil: defaults).
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Router, error) {
	r := &Router{RetryBufferLimit: DefaultRetryBufferLimit}
	if cfg != nil {
		pb, ok := cfg.(*routerv3.Router)
		if !ok {
			return nil, fmt.Errorf("router: config is %T, want Router", cfg)
		}
		if err := allowlist.Check(pb.ProtoReflect()); err != nil {
			return nil, err
		}
		r.SuppressEnvoyHeaders = pb.GetSuppressEnvoyHeaders()
	}
	var err error
	if r.mirrors, err = newMirrors(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Router is the terminal filter. Read-only after New; safe for concurrent
// use.
type Router struct {
	// SuppressEnvoyHeaders drops the x-envoy-* headers the router would add
	// (x-envoy-original-path).
	SuppressEnvoyHeaders bool
	// RetryBufferLimit bounds the request body kept for retries.
	RetryBufferLimit int

	// mirrors sends the routes' request mirrors (mirror.go); nil in a
	// Router not made by New, which does not mirror.
	mirrors *mirrors
}

// Close ends the mirrors in flight (the config that built the router is
// dropped, or the waypoint shuts down) and waits for them; streams still
// running on the router are served, without mirrors.
func (r *Router) Close() error {
	if r.mirrors != nil {
		r.mirrors.close()
	}
	return nil
}

var _ filters.Terminal = (*Router)(nil)

// Serve routes s: a local answer for redirects and direct responses, else
// the upstream's response in s.Response.
func (r *Router) Serve(s *filters.Stream) error {
	fr := s.Route()
	if fr == nil {
		return status.New(status.NoRoute, fmt.Errorf("no route for %s %s", s.Request.Authority, s.Request.Path))
	}
	rt, ok := fr.(*route.Route)
	if !ok {
		return fmt.Errorf("router: route of type %T", fr)
	}
	req, down := s.Request, s.Downstream
	switch rt.Action() {
	case route.ActionRedirect:
		s.SendLocalReply(rt.Redirect().Status, "", 0)
		s.Local.Header.Set("location", rt.RedirectLocation(req))
		r.applyToLocal(s, rt)
		return nil
	case route.ActionDirectResponse:
		d := rt.DirectResponse()
		s.SendLocalReply(d.Status, d.Body, 0)
		r.applyToLocal(s, rt)
		return nil
	}
	cluster := rt.Cluster()
	if rt.Action() == route.ActionClusterHeader {
		name, ok := rt.HeaderCluster(req)
		if !ok {
			s.SendLocalReply(rt.ClusterNotFoundStatus(), "", filters.FlagNC)
			return nil
		}
		cluster = string(name)
	}
	if s.Upstream == nil {
		return errors.New("router: the stream has no upstream")
	}

	rt.Finalize(req, down, !r.SuppressEnvoyHeaders)
	if ps := rt.MirrorPolicies(); ps != nil && r.mirrors != nil {
		r.mirrors.mirror(s, rt, ps)
	}
	hash, hasHash := rt.Hash(req, down)

	t := try{
		router: r, s: s, rt: rt, policy: rt.RetryPolicy(),
		ureq: filters.UpstreamRequest{Cluster: cluster, Request: req, Hash: hash, HasHash: hasHash, Downstream: down},
	}
	if timeout := r.timeout(s, rt); timeout > 0 {
		if req.Body == nil {
			t.headTimeout = timeout // from the headers: s.Start
		} else {
			// The route timeout starts when the body ends (timeout.go).
			ctx, cancel := context.WithCancel(s.Context)
			t.body0 = &bodyEnd{src: req.Body, timeout: timeout, ctx: ctx, cancel: cancel}
			req.Body = t.body0
			// The timeout bounds the response body too: released when
			// the stream ends, not when Serve returns.
			s.OnEnd(t.body0.stop)
		}
	}
	resp, err := t.run()
	if t.retrySlot != nil {
		s.OnEnd(t.retrySlot) // held to the end, as Envoy's retry state
	}
	if err != nil {
		if status.KindOf(err) == status.Overflow && s.Local == nil {
			r.overflow(s)
		}
		return err
	}
	if t.ureq.HashUsed {
		rt.AddSetCookies(resp, req, down)
	}
	rt.ApplyResponseHeaders(resp, req, down)
	s.Response = resp
	return nil
}

// overflow answers a request a circuit breaker refused as Envoy's router
// does (a pool failure of reason overflow): 503, flag UO, the reset reason
// in the body, and x-envoy-overloaded: true unless suppress_envoy_headers.
// Envoy never retries an overflow.
func (r *Router) overflow(s *filters.Stream) {
	retried := ""
	if s.Attempts > 1 {
		retried = "retried and the latest "
	}
	s.SendLocalReply(503, "upstream connect error or disconnect/reset before headers. "+retried+"reset reason: overflow",
		filters.FlagUO)
	s.Local.Kind = status.Overflow
	if !r.SuppressEnvoyHeaders {
		s.Local.Header.Set("x-envoy-overloaded", "true")
	}
}

// applyToLocal applies the route's response header mutations to a
// redirect or direct response, as Envoy does for the answers the router
// makes itself.
func (r *Router) applyToLocal(s *filters.Stream, rt *route.Route) {
	resp := l7.Response{Status: s.Local.Status}
	resp.Header.CopyFrom(&s.Local.Header)
	rt.ApplyResponseHeaders(&resp, s.Request, s.Downstream)
	s.Local.Header = resp.Header
}

// timeout returns the route's time for every try together, counted from
// the end of the downstream request (timeout.go): the route timeout, or
// for gRPC the grpc-timeout header when the route honours it; zero for
// none. A request without a body gets a deadline rather than a context:
// no allocation, and the upstream applies it to its transport.
func (r *Router) timeout(s *filters.Stream, rt *route.Route) time.Duration {
	timeout := rt.Timeout()
	if s.GRPC {
		if maxT, offset, honor := rt.GRPCTimeout(); honor {
			timeout = 0 // grpc-timeout replaces the route timeout: none means none
			if v, ok := s.Request.Header.Get("grpc-timeout"); ok {
				if d, ok := ParseGRPCTimeout(v); ok {
					timeout = d
				}
			}
			if maxT > 0 && (timeout == 0 || timeout > maxT) {
				timeout = maxT
			}
			if offset > 0 && timeout > offset {
				timeout -= offset
			}
		}
	}
	return max(timeout, 0)
}

// try runs the attempts of one request.
type try struct {
	router      *Router
	s           *filters.Stream
	rt          *route.Route
	headTimeout time.Duration // for every try together, from s.Start; zero: none (or see body0)
	// body0, for a request with a body and a route timeout, starts that
	// timeout when the body ends; the tries then run under ctx, which it
	// cancels when the timeout passes. Otherwise ctx is the stream's.
	body0  *bodyEnd
	ctx    context.Context
	policy *route.RetryPolicy
	ureq   filters.UpstreamRequest
	body   *replayBody
	tried  []netip.AddrPort
	// retrySlot releases the max_retries slot of the retry in flight
	// (filters.RetryLimiter); nil when none is held.
	retrySlot func()
}

// context is the tries' context.
func (t *try) context() context.Context {
	if t.body0 != nil {
		return t.body0.ctx
	}
	return t.s.Context
}

// routeDeadline is when the route's time is up; zero for none (yet).
func (t *try) routeDeadline() time.Time {
	if t.body0 != nil {
		return t.body0.deadline()
	}
	if t.headTimeout > 0 {
		return t.s.Start.Add(t.headTimeout)
	}
	return time.Time{}
}

// expired reports whether the route's time is up.
func (t *try) expired() bool {
	d := t.routeDeadline()
	return !d.IsZero() && !time.Now().Before(d)
}

// gone reports whether the route's time is up or the downstream left.
func (t *try) gone() bool { return t.expired() || t.s.Context.Err() != nil }

func (t *try) run() (*l7.Response, error) {
	p := t.policy
	retries := uint32(0)
	if p != nil && p.RetriableRequest(t.s.Request) {
		retries = p.NumRetries
	}
	if retries > 0 && t.s.Request.Body != nil {
		t.body = newReplayBody(t.s.Request.Body, t.router.RetryBufferLimit)
		t.s.Request.Body = t.body.first()
	}
	backoff := newBackoff(p)
	for attempt := uint32(0); ; attempt++ {
		resp, err := t.attempt(attempt)
		mayRetry := attempt < retries && !t.gone() && (t.body == nil || t.body.replayable())
		if err == nil {
			if !t.retriableResponse(resp) {
				return resp, nil
			}
			if !mayRetry {
				if t.gone() {
					discard(resp) // it came after the route's time was up
					return nil, t.timeout(context.DeadlineExceeded)
				}
				if attempt > 0 {
					t.s.AddResponseFlag(filters.FlagURX)
				}
				return resp, nil
			}
			if !t.takeRetry() {
				return resp, nil
			}
			discard(resp)
			if !t.wait(backoff) || !t.rewind() {
				return nil, t.timeoutOr(status.New(status.UpstreamReset, errors.New("retry abandoned")))
			}
			continue
		}
		if t.gone() && !errors.Is(err, errPerTryTimeout) {
			return nil, t.timeout(err)
		}
		if !t.retriableError(err) {
			return nil, err
		}
		if !mayRetry {
			if attempt > 0 && attempt >= retries {
				t.s.AddResponseFlag(filters.FlagURX)
			}
			return nil, err
		}
		if !t.takeRetry() {
			return nil, err
		}
		if !t.wait(backoff) || !t.rewind() {
			return nil, t.timeoutOr(err)
		}
	}
}

// takeRetry takes the slot of the retry the policy calls for, giving back
// the one of the previous retry, as Envoy's retry state does; false, with
// the flag UO, when the cluster's max_retries or retry budget refuses it:
// the answer in hand is then the request's.
func (t *try) takeRetry() bool {
	if t.retrySlot != nil {
		t.retrySlot()
		t.retrySlot = nil
	}
	rl, ok := t.s.Upstream.(filters.RetryLimiter)
	if !ok {
		return true
	}
	release, ok := rl.TryRetry(t.ureq.Cluster)
	if !ok {
		t.s.AddResponseFlag(filters.FlagUO)
		return false
	}
	t.retrySlot = release
	t.ureq.RetryHeld = true
	return true
}

// rewind points the request at a fresh replay of its body; false when the
// body can no longer be replayed.
func (t *try) rewind() bool {
	if t.body == nil {
		return true
	}
	v := t.body.rewind()
	if v == nil {
		return false
	}
	t.s.Request.Body = v
	return true
}

// timeoutOr is the route timeout's error when it passed, else err.
func (t *try) timeoutOr(err error) error {
	if t.gone() {
		return t.timeout(err)
	}
	return err
}

var errPerTryTimeout = status.New(status.Timeout, errors.New("per-try timeout"))

// attempt sends one try, bounded by the route's deadline and the per-try
// timeout, whichever comes first.
func (t *try) attempt(n uint32) (*l7.Response, error) {
	deadline := t.routeDeadline()
	perTry := false
	if t.policy != nil && t.policy.PerTryTimeout > 0 {
		if d := time.Now().Add(t.policy.PerTryTimeout); deadline.IsZero() || d.Before(deadline) {
			deadline, perTry = d, true
		}
	}
	t.ureq.Deadline = deadline
	t.ureq.Retry = n > 0
	t.ureq.Host = netip.AddrPort{}
	if t.policy != nil && t.policy.PreviousHosts {
		t.ureq.Exclude = t.tried
		t.ureq.MaxHostSelectionAttempts = int(t.policy.HostSelectionMaxAttempts)
	}
	resp, err := t.s.SendTryContext(t.context(), &t.ureq)
	if t.ureq.Host.IsValid() {
		t.tried = append(t.tried, t.ureq.Host)
	}
	if err != nil && perTry && !time.Now().Before(deadline) && !t.gone() {
		return nil, errPerTryTimeout
	}
	return resp, err
}

// timeout is the error for a request whose route timeout passed (or whose
// downstream left).
func (t *try) timeout(cause error) error {
	if t.s.Context.Err() != nil {
		return status.New(status.DownstreamGone, t.s.Context.Err())
	}
	if t.s.GRPC {
		code := status.GRPCDeadlineExceeded
		t.s.SendLocalReply(504, "upstream request timeout", filters.FlagUT)
		t.s.Local.GRPCStatus = &code
	}
	return status.New(status.Timeout, cause)
}

// wait sleeps the back-off before the next try; false when the route's
// time ran out first or the downstream left.
func (t *try) wait(b *backoff) bool {
	d := b.next()
	if rd := t.routeDeadline(); !rd.IsZero() {
		if left := time.Until(rd); left < d {
			d = max(left, 0)
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return !t.gone()
	case <-t.context().Done():
		return false
	}
}

// retriableError reports whether a failed try may be retried under the
// policy's conditions, as Envoy's router decides on a reset
// (RetryStateImpl::wouldRetryFromReset): every reset, whatever its reason
// (a connect failure, a connection termination, a remote or refused
// stream reset, the local reset of a per-try timeout), is retried on
// reset, 5xx or gateway-error; a connect failure also on connect-failure,
// a refused stream also on refused-stream; an overflow never.
// reset-before-request is not applied (it needs to know whether a try
// sent a byte).
func (t *try) retriableError(err error) bool {
	if t.policy == nil {
		return false
	}
	return retriableKind(t.policy.RetryOn, status.KindOf(err))
}

// retriableKind is retriableError for a failure of kind k under on.
func retriableKind(on route.RetryOn, k status.Kind) bool {
	const anyReset = route.RetryReset | route.Retry5xx | route.RetryGatewayError
	switch k {
	case status.ConnectFailure:
		return on&(route.RetryConnectFailure|anyReset) != 0
	case status.RefusedStream:
		return on&(route.RetryRefusedStream|anyReset) != 0
	case status.UpstreamReset, status.ConnectionTermination, status.Timeout:
		return on&anyReset != 0
	}
	return false
}

// retriableResponse reports whether a response's headers call for a retry.
func (t *try) retriableResponse(resp *l7.Response) bool {
	if t.policy == nil {
		return false
	}
	on := t.policy.RetryOn
	code := resp.Status
	switch {
	case code >= 500 && on.Has(route.Retry5xx):
		return true
	case (code == 502 || code == 503 || code == 504) && on.Has(route.RetryGatewayError):
		return true
	case code == 409 && on.Has(route.RetryRetriable4xx):
		return true
	case on.Has(route.RetryRetriableStatusCodes) && t.policy.RetriableStatus(code):
		return true
	case on.Has(route.RetryEnvoyRateLimited) && resp.Header.Has("x-envoy-ratelimited"):
		return true
	case on.Has(route.RetryRetriableHeaders) && t.policy.RetriableResponse(resp):
		return true
	}
	if t.s.GRPC {
		// Only a trailers-only response carries grpc-status in its headers;
		// otherwise the status comes after the body, too late to retry.
		if v, ok := resp.Header.Get("grpc-status"); ok {
			switch string(v) {
			case "1":
				return on.Has(route.RetryGRPCCancelled)
			case "4":
				return on.Has(route.RetryGRPCDeadlineExceeded)
			case "8":
				return on.Has(route.RetryGRPCResourceExhausted)
			case "13":
				return on.Has(route.RetryGRPCInternal)
			case "14":
				return on.Has(route.RetryGRPCUnavailable)
			}
		}
	}
	return false
}

// backoff is Envoy's fully jittered exponential back-off: a random wait
// below base×(2^n−1), capped at the maximum.
type backoff struct {
	base, max time.Duration
	n         uint
}

func newBackoff(p *route.RetryPolicy) *backoff {
	b := &backoff{base: route.DefaultRetryBaseInterval, n: 1}
	if p != nil && p.BaseInterval > 0 {
		b.base = p.BaseInterval
	}
	b.max = 10 * b.base
	if p != nil && p.MaxInterval > 0 {
		b.max = p.MaxInterval
	}
	return b
}

func (b *backoff) next() time.Duration {
	ceiling := b.base * time.Duration((uint64(1)<<b.n)-1)
	if ceiling <= b.max {
		b.n++
	} else {
		ceiling = b.max
	}
	return min(time.Duration(rand.Int64N(int64(ceiling))), b.max)
}

package upstream

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http1"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// HTTP returns the filters.Upstream of the streams that run on snap: it
// sends requests to snap's clusters. Cheap; make one per connection.
func (c *Clusters) HTTP(snap *xds.Snapshot) filters.Upstream {
	return &httpUpstream{c: c, snap: snap}
}

type httpUpstream struct {
	c    *Clusters
	snap *xds.Snapshot
}

// RoundTrip implements filters.Upstream.
func (u *httpUpstream) RoundTrip(ctx context.Context, ureq *filters.UpstreamRequest) (*l7.Response, error) {
	if err := ctx.Err(); err != nil {
		// The downstream left before the try: no host is picked, no
		// connection taken or opened (docs/hardening.md, "Amplification").
		return nil, status.New(status.DownstreamGone, err)
	}
	pc := lb.PickContext{Hash: ureq.Hash, HasHash: ureq.HasHash, ExcludeAddrs: ureq.Exclude,
		HostSelectionMaxAttempts: ureq.MaxHostSelectionAttempts}
	if ureq.Downstream != nil {
		pc.Destination = ureq.Downstream.Destination
	}
	cl, p, err := u.c.choose(u.snap, ureq.Cluster, &pc, ureq.Retry && !ureq.RetryHeld, true)
	if err != nil {
		return nil, err
	}
	ureq.Host = p.host.Addr
	if cl.UpstreamTLS.Originate != nil && (cl.AutoSNI || cl.AutoSANValidation) {
		p.sni = requestHost(ureq.Request.Authority)
	}
	ureq.HashUsed = cl.LBPolicy == xds.LBPolicyRingHash || cl.LBPolicy == xds.LBPolicyMaglev
	proto := cl.UpstreamProtocol
	if proto == xds.UpstreamUseDownstream {
		proto = xds.UpstreamHTTP1
		if ureq.Request.Proto == l7.HTTP2 {
			proto = xds.UpstreamHTTP2
		}
	}
	x := exchange{ctx: ctx, deadline: ureq.Deadline, pick: p, req: ureq.Request, down: ureq.Downstream}
	var resp *l7.Response
	switch proto {
	case xds.UpstreamHTTP2:
		// A stream reserved on a connection cannot be given back: the
		// max_requests slot comes first.
		if err = x.pick.takeRequest(u.c, cl); err == nil {
			pool := &p.ep.h2
			if cl.ProxyProtocol != xds.ProxyProtocolNone {
				// A connection of this request alone (proxyproto.go),
				// closed with its response.
				pool = &h2Pool{pp: proxyHeader(cl.ProxyProtocol, ureq.Downstream)}
			}
			if resp, err = pool.roundTrip(u.c, cl, &x); err != nil && pool.pp != nil {
				pool.Close()
			}
		}
	default:
		resp, err = p.ep.h1.roundTrip(u.c, cl, &x)
	}
	if err != nil {
		err = x.classify(err)
		x.pick.done(lb.ResultOf(status.KindOf(err)))
		return nil, err
	}
	return resp, nil
}

// TryRetry implements filters.RetryLimiter: the cluster's max_retries or
// retry budget.
func (u *httpUpstream) TryRetry(cluster string) (release func(), ok bool) {
	cs := u.c.LB.Cluster(cluster)
	if cs == nil {
		return func() {}, true // the try fails on the cluster anyway
	}
	return cs.Breakers().TryRetry()
}

// exchange is one request to one picked host: what bounds it and what it
// must report when it ends.
type exchange struct {
	ctx      context.Context // cancelled when the downstream leaves
	deadline time.Time       // zero: none
	pick     pick
	req      *l7.Request
	down     *filters.Downstream // where the request came from (PROXY protocol)
}

// expired reports whether the exchange's deadline has passed.
func (x *exchange) expired() bool {
	return !x.deadline.IsZero() && !time.Now().Before(x.deadline)
}

// classify gives an upstream failure its kind: past the deadline it is a
// timeout, after the downstream left a vanished downstream (the pools
// close a connection for either, which fails what runs on it), then a
// connection that ended under the exchange a connection termination
// (connTerminated), and any other unclassified error a reset. It is
// idempotent: a classified error is returned as it is.
func (x *exchange) classify(err error) error {
	if status.KindOf(err) != status.Unknown {
		return err
	}
	var ne net.Error
	switch {
	case x.expired() || errors.As(err, &ne) && ne.Timeout():
		return status.New(status.Timeout, err)
	case x.ctx.Err() != nil:
		return status.New(status.DownstreamGone, err)
	case connTerminated(err):
		return status.New(status.ConnectionTermination, err)
	}
	return status.New(status.UpstreamReset, err)
}

// connTerminated reports whether err says the upstream connection ended
// under the exchange, after the request was (at least partly) sent and
// before the response head was whole: Envoy's reset reason "connection
// termination". On HTTP/1.1 that is any failure of the connection's
// stream (*http1.ConnError: the upstream's close or reset, or the end of
// the HBONE tunnel or of its connection); on HTTP/2, the end of the
// connection (h2ConnLost), not the reset of the one stream.
func connTerminated(err error) bool {
	var ce *http1.ConnError
	return errors.As(err, &ce) || h2ConnLost(err)
}

// h2ConnLost reports whether err is the end of an HTTP/2 connection under
// its streams: closed (the peer's EOF, after a GOAWAY or not), its
// transport broken, or its keep-alive PING unanswered. A connection we
// end for the peer's protocol error is not counted here (Envoy says
// UPE, which the waypoint does not have: a reset).
func h2ConnLost(err error) bool {
	if errors.Is(err, http2.ErrClosed) {
		return true
	}
	var te *http2.TransportError
	if errors.As(err, &te) {
		return true
	}
	var ce *http2.ConnError
	return errors.As(err, &ce) && ce.Defence == http2.DefenceKeepAliveTimeout
}

// countTerminated counts a connection of cluster that the upstream ended
// with a request active, as Envoy's pools count it:
// upstream_cx_destroy_with_active_rq and
// upstream_cx_destroy_remote_with_active_rq.
func countTerminated(cluster string) {
	cs := metrics.Cluster(cluster)
	cs.DestroyWithActive.Inc()
	cs.DestroyRemoteWithActive.Inc()
}

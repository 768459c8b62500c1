// Package tcpproxy serves a filter chain whose terminal filter is Envoy's
// tcp_proxy: it opens the upstream, accepts the downstream only once the
// upstream is up, and relays bytes between them.
package tcpproxy

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// Proxy serves tcp_proxy chains. Safe for concurrent use.
type Proxy struct {
	Clusters *upstream.Clusters
	Log      *slog.Logger
	// Metrics and Logs receive each connection's Istio TCP metrics and
	// access log lines; nil reports nothing there.
	Metrics *metrics.Recorder
	Logs    *accesslog.Sinks
}

// Serve proxies the downstream connection c per tp: it opens the upstream,
// answers c only once the upstream is up (HBONE 200; an upstream that
// cannot be reached refuses it, 503), then relays both ways until both
// directions end, or, for a connection that is a Detacher (an HBONE
// stream), starts the relay and returns: the relay goes on without the
// caller. Serve owns c: the relay closes it (or resets it after an error),
// or it is refused. The dial stops when c's Context ends. Streams in flight
// keep the snapshot they started with; a drain does not cut them (the
// waypoint closes them when its drain time is up).
//
// With serveDubbo not nil, a connection whose first bytes are Dubbo's is
// served by serveDubbo instead, once answered, its first bytes put back,
// and closed when it returns (dubbo.go); nil relays every connection.
func (p *Proxy) Serve(snap *xds.Snapshot, tp *xds.TCPProxy, c *downstream.Conn, serveDubbo func(*downstream.Conn)) {
	start := time.Now()
	info := &c.Info
	// Destination is for a cluster whose host is the connection's own
	// destination (encap).
	pc := lb.PickContext{Destination: c.Target}
	pc.Hash, pc.HasHash = hash(tp, info)
	up, ep, done, err := p.Clusters.ConnectTCPTo(c.Context(), snap, tp.Cluster, pc, info)
	if err != nil {
		p.report(snap, tp, info, nil, "", start, ep, relay.Result{}, err)
		if c.Answered() {
			p.Log.Info("tcp_proxy: refused connection", "conn", c.String(), "cluster", tp.Cluster, "reason", err.Error())
		}
		c.Refuse(err)
		return
	}
	// done is called once the upstream connection has ended, on every
	// path below.
	cs := metrics.Cluster(tp.Cluster)
	cs.Active.Inc()
	if err := c.Accept(); err != nil {
		p.Log.Debug("tcp_proxy: downstream gone before accept", "conn", c.String(), "error", err)
		cs.Active.Dec()
		ls, dims := p.opened(snap, tp, info, start, ep)
		p.report(snap, tp, info, ls, dims, start, ep, relay.Result{}, status.New(status.DownstreamGone, err))
		abortConn(up)
		done()
		return
	}
	dc := c.Relayed()
	var sn *sniffer
	if serveDubbo != nil {
		sn = newSniffer(dc, up)
	}
	if sn != nil {
		switch sn.run(tp.IdleTimeout) {
		case sniffDubbo:
			// The upstream has carried nothing: closed, and the calls
			// go to the cluster's endpoints one by one. The connection's
			// telemetry is its calls' (request metrics, a log line each),
			// not a TCP connection's.
			up.Close()
			sn.upWaited()
			done()
			cs.Active.Dec()
			p.Log.Debug("tcp_proxy: Dubbo found, served per call", "conn", c.String(), "cluster", tp.Cluster)
			sn.unread(c)
			serveDubbo(c)
			c.Close()
			return
		case sniffIdle:
			abortConn(up)
			c.Abort()
			sn.upWaited()
			done()
			cs.Active.Dec()
			ls, dims := p.opened(snap, tp, info, start, ep)
			res := relay.Result{Err: relay.ErrIdleTimeout}
			p.logEnd(c, tp, ep, res)
			p.report(snap, tp, info, ls, dims, start, ep, res, nil)
			return
		}
		if sn.n > 0 {
			// Bytes that are not Dubbo's go on ahead of the relay.
			if _, err := up.Write(sn.prefix[:sn.n]); err != nil {
				abortConn(up)
				c.Abort()
				sn.upWaited()
				done()
				cs.Active.Dec()
				ls, dims := p.opened(snap, tp, info, start, ep)
				res := relay.Result{Err: err}
				p.logEnd(c, tp, ep, res)
				p.report(snap, tp, info, ls, dims, start, ep, res, nil)
				return
			}
		}
		up = sn.upstream()
	}
	ls, dims := p.opened(snap, tp, info, start, ep)
	var sniffed int64
	if sn != nil {
		sniffed = int64(sn.n)
	}
	opts := relay.Options{IdleTimeout: tp.IdleTimeout, MaxDuration: tp.MaxDownstreamConnectionDuration}
	if d, ok := dc.(Detacher); ok {
		finish := d.Detach()
		relay.Start(dc, up, opts, nil, func(res relay.Result) {
			done()
			if sn != nil {
				sn.upWaited()
			}
			res.DownstreamToUpstream += sniffed
			cs.Active.Dec()
			p.logEnd(c, tp, ep, res)
			p.report(snap, tp, info, ls, dims, start, ep, res, nil)
			finish()
		})
		return
	}
	res := relay.Run(dc, up, opts, nil)
	done()
	if sn != nil {
		sn.upWaited()
	}
	res.DownstreamToUpstream += sniffed
	cs.Active.Dec()
	p.logEnd(c, tp, ep, res)
	p.report(snap, tp, info, ls, dims, start, ep, res, nil)
}

// opened records a connection as opened in the TCP metrics and returns its
// label set (nil without metrics) and the stats filter's dimensions.
func (p *Proxy) opened(snap *xds.Snapshot, tp *xds.TCPProxy, info *filters.Downstream, start time.Time, ep netip.AddrPort) (*metrics.LabelSet, metrics.Dims) {
	ls := p.labels(snap, tp, info, ep)
	var dims metrics.Dims
	if ls != nil && tp.Stats.HasDimensions() {
		// The stats filter's tags set by expression, evaluated once on what
		// the connection has when it opens (its source, destination and
		// upstream), for both its opened and closed counts.
		rec := accesslog.Record{Start: start, Downstream: info, Cluster: tp.Cluster, Host: ep}
		dims = tp.Stats.Eval(&rec)
	}
	ls.TCPOpenedDims(dims)
	return ls, dims
}

// abortConn ends c abnormally.
func abortConn(c relay.Conn) {
	if a, ok := c.(relay.Aborter); ok {
		a.Abort()
		return
	}
	c.Close()
}

// hash is the connection's hash for ring-hash and Maglev clusters, as
// Envoy's tcp_proxy hash_policy computes it: source_ip hashes the
// downstream's IP address as text with xxHash64 (as the HTTP route's
// connection_properties source_ip does). ok is false without a policy or an
// address (the balancer then picks at random).
func hash(tp *xds.TCPProxy, info *filters.Downstream) (h uint64, ok bool) {
	if !tp.HashSourceIP || info == nil || !info.RemoteAddr.IsValid() {
		return 0, false
	}
	var buf [64]byte
	return xxhash.Sum64(info.RemoteAddr.Addr().AppendTo(buf[:0])), true
}

// labels returns the connection's metric labels (nil without metrics).
func (p *Proxy) labels(snap *xds.Snapshot, tp *xds.TCPProxy, info *filters.Downstream, ep netip.AddrPort) *metrics.LabelSet {
	if p.Metrics == nil || info == nil {
		return nil
	}
	k := metrics.Key{Version: snap.Version, Protocol: metrics.TCP, PeerURI: info.PeerURI, Baggage: info.Baggage,
		Cluster: tp.Cluster, Host: ep, MutualTLS: info.PeerURI != "", Overrides: tp.Stats}
	return p.Metrics.LabelSet(k, resolver{snap})
}

// report records a finished (or refused) connection: the TCP metrics and
// the access log line, with Envoy's response flags for a connection that
// could not be proxied.
func (p *Proxy) report(snap *xds.Snapshot, tp *xds.TCPProxy, info *filters.Downstream, ls *metrics.LabelSet, dims metrics.Dims,
	start time.Time, ep netip.AddrPort, res relay.Result, err error) {
	if ls != nil {
		ls.TCPClosedDims(dims, res.UpstreamToDownstream, res.DownstreamToUpstream)
	}
	if p.Logs == nil || len(tp.AccessLog) == 0 {
		return
	}
	rec := accesslog.Record{Start: start, Duration: time.Since(start), Downstream: info,
		BytesIn: res.DownstreamToUpstream, BytesOut: res.UpstreamToDownstream, Cluster: tp.Cluster, Host: ep}
	if ls != nil && accesslog.NeedsPeers(tp.AccessLog) {
		rec.Source, rec.Destination = ls.SourceField, ls.DestinationField
	}
	if err != nil {
		rec.Flags = filters.FlagOf(status.KindOf(err))
		rec.Failure = err.Error()
	} else if res.Err != nil {
		rec.Termination = res.Err.Error()
	}
	p.Logs.Emit(tp.AccessLog, &rec)
}

// resolver finds a connection's destination labels in its snapshot.
type resolver struct{ snap *xds.Snapshot }

func (r resolver) Destination(k metrics.Key) metrics.Destination {
	return upstream.DestinationLabels(r.snap, k.Cluster, k.Host)
}

// Detacher is an accepted downstream that can outlive the call serving it
// (an HBONE stream): Serve then hands it to an event-driven relay
// (relay.Start) and returns, and calls finish once the relay is done, so
// that an idle tunnel holds no goroutine.
type Detacher interface {
	Detach() (finish func())
}

func (p *Proxy) logEnd(c *downstream.Conn, tp *xds.TCPProxy, ep netip.AddrPort, res relay.Result) {
	if !p.Log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.Log.Debug("tcp_proxy: stream ended", "conn", c.String(), "cluster", tp.Cluster, "upstream", ep,
		"bytes_sent", res.DownstreamToUpstream, "bytes_received", res.UpstreamToDownstream, "error", res.Err)
}

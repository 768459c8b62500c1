// Package tcpproxy serves a filter chain whose terminal filter is Envoy's
// tcp_proxy: it opens the upstream, accepts the downstream only once the
// upstream is up, and relays bytes between them.
package tcpproxy

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/xds"
)

// Downstream is the connection being proxied, before it is answered.
type Downstream interface {
	// Accept answers the downstream (HBONE 200) and returns it as a byte
	// stream.
	Accept() (relay.Conn, error)
	// Refuse answers the downstream with err's status and logs why.
	Refuse(err error)
}

// Proxy serves tcp_proxy chains. Safe for concurrent use.
type Proxy struct {
	Clusters *upstream.Clusters
	Log      *slog.Logger
}

// Serve proxies one downstream connection per tp until both directions
// end, or, for a downstream that is a Detacher, until the relay is started:
// it then goes on without the caller. Streams in flight keep the snapshot
// they started with.
func (p *Proxy) Serve(ctx context.Context, snap *xds.Snapshot, tp *xds.TCPProxy, down Downstream, desc string) {
	var dst netip.AddrPort
	if d, ok := down.(interface{ Destination() netip.AddrPort }); ok {
		dst = d.Destination() // for a cluster whose host is the destination (encap)
	}
	up, ep, done, err := p.Clusters.ConnectTCPTo(ctx, snap, tp.Cluster, dst)
	if err != nil {
		down.Refuse(err)
		return
	}
	defer done()
	dc, err := down.Accept()
	if err != nil {
		p.Log.Debug("tcp_proxy: downstream gone before accept", "stream", desc, "error", err)
		if a, ok := up.(relay.Aborter); ok {
			a.Abort()
		} else {
			up.Close()
		}
		return
	}
	opts := relay.Options{IdleTimeout: tp.IdleTimeout}
	if d, ok := dc.(Detacher); ok {
		finish := d.Detach()
		relay.Start(dc, up, opts, nil, func(res relay.Result) {
			done()
			p.logEnd(desc, tp, ep, res)
			finish()
		})
		return
	}
	res := relay.Run(dc, up, opts, nil)
	p.logEnd(desc, tp, ep, res)
}

// Detacher is an accepted downstream that can outlive the call serving it
// (an HBONE stream): Serve then hands it to an event-driven relay
// (relay.Start) and returns, and calls finish once the relay is done, so
// that an idle tunnel holds no goroutine.
type Detacher interface {
	Detach() (finish func())
}

func (p *Proxy) logEnd(desc string, tp *xds.TCPProxy, ep netip.AddrPort, res relay.Result) {
	if !p.Log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.Log.Debug("tcp_proxy: stream ended", "stream", desc, "cluster", tp.Cluster, "upstream", ep,
		"bytes_sent", res.DownstreamToUpstream, "bytes_received", res.UpstreamToDownstream, "error", res.Err)
}

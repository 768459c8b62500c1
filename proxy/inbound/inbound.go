// Package inbound is the waypoint's HBONE entry: every CONNECT stream the
// HBONE server accepts is one downstream connection to its :authority,
// served by the filter chain of the main_internal listener that matches
// that destination, as istiod lays a waypoint out.
package inbound

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/tcpproxy"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// MainInternal is the name of the internal listener HBONE streams enter.
const MainInternal = "main_internal"

// Handler serves HBONE streams from the current config. Safe for concurrent
// use; each stream reads the snapshot once and keeps it to its end.
type Handler struct {
	Store    *xds.Store
	TCP      *tcpproxy.Proxy
	HTTP     *httpconn.Env
	Clusters httpconn.Upstreams
	Dubbo    *dubboconn.Env
	// Logs writes the listener's access_log for the streams no filter
	// chain takes (nil: none written).
	Logs *accesslog.Sinks
}

var _ hbone.Handler = (*Handler)(nil)

// ServeHBONE implements hbone.Handler.
func (h *Handler) ServeHBONE(ctx context.Context, st *hbone.ServerStream) {
	ls := metrics.Listener(MainInternal)
	ls.Connections.Inc()
	ls.Active.Inc()
	defer ls.Active.Dec()
	down := stream{st}
	snap := h.Store.Load()
	if snap == nil {
		down.Refuse(status.New(status.NoRoute, fmt.Errorf("no config loaded")))
		return
	}
	name := targetListener(snap)
	l := snap.Listener(name)
	if l == nil {
		down.Refuse(status.New(status.NoRoute, fmt.Errorf("no %s listener in config", name)))
		return
	}
	in := xds.MatchInput{Destination: st.Target, Source: st.PeerAddr}
	if l.Sniffs(st.Target) {
		h.serveSniffed(ctx, st, snap, name, l, in) // http_inspector: see sniffed.go
		return
	}
	fc := l.Match(in)
	if fc == nil {
		h.noChain(l, st)
		down.Refuse(status.New(status.NoRoute, fmt.Errorf("no service or workload matches %s", st.Target)))
		return
	}
	info := downstreamOf(st)
	if ok, details := fc.AllowConnection(info); !ok {
		// As in Envoy, the tunnel is up before the network filters run:
		// the CONNECT is answered, then the connection closed.
		h.denied(info, st, details)
		if conn, err := st.Accept(); err == nil {
			conn.Close()
		}
		return
	}
	if fc.HTTP != nil {
		conn, err := st.Accept()
		if err != nil {
			return
		}
		src := httpconn.NewSource(h.Store, name, in, h.Clusters, snap, fc.HTTP)
		httpconn.Serve(ctx, conn, src, info, h.HTTP)
		return
	}
	if fc.Dubbo != nil {
		conn, err := st.Accept()
		if err != nil {
			return
		}
		dubboconn.Serve(ctx, conn, dubboconn.NewSource(h.Store, name, in, snap, fc.Dubbo), info, h.Dubbo)
		return
	}
	h.TCP.Serve(ctx, snap, fc.TCPProxy, down, info, st.Peer.String()+" -> "+st.Authority)
}

// noChain writes the listener's access_log for a stream no filter chain
// takes, with Envoy's response flag NR.
func (h *Handler) noChain(l *xds.Listener, st *hbone.ServerStream) {
	if h.Logs == nil || len(l.AccessLog) == 0 {
		return
	}
	h.Logs.Emit(l.AccessLog, &accesslog.Record{Start: st.Start, Duration: time.Since(st.Start), Downstream: downstreamOf(st),
		Flags: filters.FlagFor("NR"), Termination: "filter_chain_not_found"})
}

func (h *Handler) denied(info *filters.Downstream, st *hbone.ServerStream, details string) {
	h.TCP.Log.Info("inbound: connection denied by RBAC", "peer", info.PeerURI, "authority", st.Authority, "details", details)
}

// downstreamOf describes an HBONE stream's downstream connection: the
// peer's identity, the addresses, the :authority, and the baggage header
// the source ztunnel sent (its workload's metadata, for telemetry).
func downstreamOf(st *hbone.ServerStream) *filters.Downstream {
	d := &filters.Downstream{
		Peer: st.Peer, RemoteAddr: st.PeerAddr, LocalAddr: st.LocalAddr, Destination: st.Target,
		Authority: st.Authority,
	}
	if !st.Peer.IsZero() {
		d.PeerURI = st.Peer.String()
	}
	if st.Header != nil {
		if b, ok := st.Header.Get("baggage"); ok {
			d.Baggage = string(b)
		}
	}
	return d
}

// stream adapts an HBONE server stream to tcpproxy.Downstream.
type stream struct{ st *hbone.ServerStream }

func (s stream) Accept() (relay.Conn, error) { return s.st.Accept() }

func (s stream) Refuse(err error) {
	k := status.KindOf(err)
	s.st.RefuseFlag(k.HBONEStatus(), k.ResponseFlag(), err.Error())
}

// Destination is the stream's original destination, for a cluster whose
// host it is (encap).
func (s stream) Destination() netip.AddrPort { return s.st.Target }

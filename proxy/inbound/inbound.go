// Package inbound is the waypoint's HBONE entry: every CONNECT stream the
// HBONE server accepts is one downstream connection to its :authority,
// served by the filter chain of the main_internal listener that matches
// that destination, as istiod lays a waypoint out.
package inbound

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/tcpproxy"
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
}

var _ hbone.Handler = (*Handler)(nil)

// ServeHBONE implements hbone.Handler.
func (h *Handler) ServeHBONE(ctx context.Context, st *hbone.ServerStream) {
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
		down.Refuse(status.New(status.NoRoute, fmt.Errorf("no service or workload matches %s", st.Target)))
		return
	}
	if fc.HTTP != nil {
		conn, err := st.Accept()
		if err != nil {
			return
		}
		src := httpconn.NewSource(h.Store, name, in, h.Clusters, snap, fc.HTTP)
		httpconn.Serve(ctx, conn, src, &filters.Downstream{
			Peer: st.Peer, RemoteAddr: st.PeerAddr, LocalAddr: st.LocalAddr, Destination: st.Target,
		}, h.HTTP)
		return
	}
	if fc.Dubbo != nil {
		conn, err := st.Accept()
		if err != nil {
			return
		}
		dubboconn.Serve(ctx, conn, dubboconn.NewSource(h.Store, name, in, snap, fc.Dubbo), &filters.Downstream{
			Peer: st.Peer, RemoteAddr: st.PeerAddr, LocalAddr: st.LocalAddr, Destination: st.Target,
		}, h.Dubbo)
		return
	}
	h.TCP.Serve(ctx, snap, fc.TCPProxy, down, st.Peer.String()+" -> "+st.Authority)
}

// stream adapts an HBONE server stream to tcpproxy.Downstream.
type stream struct{ st *hbone.ServerStream }

func (s stream) Accept() (relay.Conn, error) { return s.st.Accept() }

func (s stream) Refuse(err error) { s.st.Refuse(status.KindOf(err).HBONEStatus(), err.Error()) }

// Destination is the stream's original destination, for a cluster whose
// host it is (encap).
func (s stream) Destination() netip.AddrPort { return s.st.Target }

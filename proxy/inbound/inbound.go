// Package inbound is the waypoint's HBONE entry: every CONNECT stream the
// HBONE server accepts is one downstream connection to its :authority,
// served by the filter chain of the main_internal listener that matches
// that destination, as istiod lays a waypoint out.
package inbound

import (
	"context"
	"fmt"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
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
	c := downstream.NewPending(ctx, stream{st}, downstreamOf(st))
	c.Target = st.Target
	snap := h.Store.Load()
	if snap == nil {
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no config loaded")))
		return
	}
	name := targetListener(snap)
	l := snap.Listener(name)
	if l == nil {
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no %s listener in config", name)))
		return
	}
	in := xds.MatchInput{Destination: st.Target, Source: st.PeerAddr}
	if l.Sniffs(st.Target) {
		h.serveSniffed(ctx, c, st, snap, name, l, in) // http_inspector: see sniffed.go
		return
	}
	fc := l.Match(in)
	if fc == nil {
		h.noChain(l, st, &c.Info)
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no service or workload matches %s", st.Target)))
		return
	}
	if ok, details := fc.AllowConnection(&c.Info); !ok {
		// As in Envoy, the tunnel is up before the network filters run:
		// the CONNECT is answered, then the connection closed.
		h.denied(&c.Info, st, details)
		if c.Accept() == nil {
			c.Close()
		}
		return
	}
	if fc.HTTP != nil {
		if c.Accept() != nil {
			return
		}
		src := httpconn.NewSource(h.Store, name, in, h.Clusters, snap, fc.HTTP)
		httpconn.Serve(ctx, c, src, h.HTTP)
		return
	}
	if fc.Dubbo != nil {
		if c.Accept() != nil {
			return
		}
		dubboconn.Serve(c, dubboconn.NewSource(h.Store, name, in, snap, fc.Dubbo), h.Dubbo)
		return
	}
	h.TCP.Serve(snap, fc.TCPProxy, c)
}

// noChain writes the listener's access_log for a stream no filter chain
// takes, with Envoy's response flag NR.
func (h *Handler) noChain(l *xds.Listener, st *hbone.ServerStream, info *filters.Downstream) {
	if h.Logs == nil || len(l.AccessLog) == 0 {
		return
	}
	h.Logs.Emit(l.AccessLog, &accesslog.Record{Start: st.Start, Duration: time.Since(st.Start), Downstream: info,
		Flags: filters.FlagFor("NR"), Termination: "filter_chain_not_found"})
}

func (h *Handler) denied(info *filters.Downstream, st *hbone.ServerStream, details string) {
	h.TCP.Log.Info("inbound: connection denied by RBAC", "peer", info.PeerURI, "authority", st.Authority, "details", details)
}

// downstreamOf describes an HBONE stream's downstream connection: the
// peer's identity, the addresses, the :authority, and the baggage header
// the source ztunnel sent (its workload's metadata, for telemetry).
func downstreamOf(st *hbone.ServerStream) filters.Downstream {
	d := filters.Downstream{
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

// stream answers an HBONE server stream for a downstream.Conn.
type stream struct{ st *hbone.ServerStream }

// Accept answers 200.
func (s stream) Accept() (downstream.Transport, error) {
	conn, err := s.st.Accept()
	if err != nil {
		return nil, err // not a nil *StreamConn in an interface
	}
	return conn, nil
}

// Refuse answers err's HBONE status; hbone logs the refusal.
func (s stream) Refuse(err error) {
	k := status.KindOf(err)
	s.st.RefuseFlag(k.HBONEStatus(), k.ResponseFlag(), err.Error())
}

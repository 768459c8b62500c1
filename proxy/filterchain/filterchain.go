// Package filterchain serves a downstream connection by the filter chain
// its listener matched for it. The chain's network filters decide: its
// network RBAC first, then its network ext_authz (a denied connection is answered, then closed, as
// Envoy's internal listener does), then its terminal filter picks the
// connection manager: HttpConnectionManager (proxy/httpconn), dubbo_proxy
// (proxy/dubboconn) or tcp_proxy (proxy/tcpproxy).
//
// Both entries of the data path end here: proxy/inbound for HBONE streams
// (after sniffing, for http_inspector listeners) and proxy/listener for
// plaintext listeners' TCP connections. Each passes its drain context,
// whose end tells the connections to finish (HTTP: GOAWAY, or the end of
// an HTTP/1.1 connection after its response in flight).
package filterchain

import (
	"context"
	"log/slog"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/tcpproxy"
	"github.com/gowaypoint/waypoint/xds"
)

// Server serves matched chains with the connection managers it holds. Its
// fields are set before the first Serve and read-only afterwards; safe
// for concurrent use. Every field but Log is required.
type Server struct {
	// Store is the config in force: HTTP and Dubbo connections rebind to
	// it per request or call.
	Store    *xds.Store
	HTTP     *httpconn.Env
	Clusters httpconn.Upstreams
	Dubbo    *dubboconn.Env
	TCP      *tcpproxy.Proxy
	// NoDubboOnTCP relays every connection of a tcp_proxy chain as bytes.
	// By default (false) a connection of a tcp_proxy chain that speaks
	// Dubbo is served per call through Dubbo, unless its cluster says
	// otherwise (xds.Cluster.NoDubboOnTCP; see tcpproxy's dubbo.go).
	NoDubboOnTCP bool
	// Log receives the RBAC denials; nil: slog.Default().
	Log *slog.Logger
}

// Match is a connection's match: the chain, the listener it belongs to
// and what it was matched on, in the snapshot current when the
// connection came in.
type Match struct {
	Snapshot *xds.Snapshot
	Listener string         // the listener's name
	Input    xds.MatchInput // what the chain was matched on; HTTP and Dubbo match again on it when the config changes
	Chain    *xds.FilterChain
}

// Serve serves c by m's chain until the connection ends; for a tcp_proxy
// chain on an HBONE stream, until the relay is started (it then goes on
// without the caller, see tcpproxy.Proxy.Serve), and for an HTTP chain on
// an HBONE stream that has sent nothing yet, until it waits for its first
// bytes (see httpconn.Start).
//
// ctx is the drain context: when it is done, connections finish what is
// in flight and end (HTTP/2 GOAWAY; HTTP/1.1 after the response in flight,
// at once when idle). Dubbo drains through dubboconn.Env.Drain, and a TCP
// relay goes on until its owner closes it.
//
// Serve owns c, answered or not: it answers it (HBONE 200) when the chain
// takes it and closes it when the connection manager returns, or hands it
// to tcp_proxy, which answers it once the upstream is up and whose relay
// closes it.
func (s *Server) Serve(ctx context.Context, c *downstream.Conn, m Match) {
	fc := m.Chain
	if ok, details := fc.AdmitConnection(ctx, &c.Info, func() filters.Upstream { return s.Clusters.HTTP(m.Snapshot) }); !ok {
		s.log().Info("connection denied by RBAC or ext_authz", "listener", m.Listener, "conn", c.String(), "details", details)
		// As in Envoy, the connection is up before the network filters
		// run: it is answered, then closed.
		if c.Accept() == nil {
			c.Close()
		}
		return
	}
	switch {
	case fc.HTTP != nil:
		if c.Accept() != nil {
			return
		}
		// An HBONE stream that has sent nothing yet waits without a
		// goroutine: Start may return before the connection ends.
		httpconn.Start(ctx, c, httpconn.NewSource(s.Store, m.Listener, m.Input, s.Clusters, m.Snapshot, fc.HTTP), s.HTTP,
			func() { c.Close() })
	case fc.Dubbo != nil:
		if c.Accept() != nil {
			return
		}
		dubboconn.Serve(c, dubboconn.NewSource(s.Store, m.Listener, m.Input, m.Snapshot, fc.Dubbo), s.Dubbo)
		c.Close()
	default:
		tp := fc.TCPProxy
		if !s.dubboOnTCP(m.Snapshot, tp) {
			s.TCP.Serve(m.Snapshot, tp, c, nil)
			return
		}
		serveDubbo := func(c *downstream.Conn) {
			dubboconn.Serve(c, dubboconn.NewSource(s.Store, m.Listener, m.Input, m.Snapshot, tp.Dubbo), s.Dubbo)
		}
		if m.Input.AppProtocol == sniffedDubbo && c.Answered() {
			// Sniffed already (http_inspector): no upstream to open.
			serveDubbo(c)
			c.Close()
			return
		}
		s.TCP.Serve(m.Snapshot, tp, c, serveDubbo)
	}
}

// sniffedDubbo is the application protocol proxy/inbound reports for a
// stream whose first bytes are Dubbo's.
const sniffedDubbo = "'dubbo'"

// dubboOnTCP reports whether the connections of tcp_proxy chain tp are
// served as Dubbo when they speak it: unless turned off (NoDubboOnTCP, or
// the cluster's metadata), for a cluster of endpoints of its own (not the
// stream's own destination) and a tcp_proxy that does not tunnel.
func (s *Server) dubboOnTCP(snap *xds.Snapshot, tp *xds.TCPProxy) bool {
	if s.NoDubboOnTCP || s.Dubbo == nil || tp.Dubbo == nil || tp.Tunnel != nil {
		return false
	}
	cl := snap.Cluster(tp.Cluster)
	return cl != nil && !cl.NoDubboOnTCP && !cl.OriginalDestination
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

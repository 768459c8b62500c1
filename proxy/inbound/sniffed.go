package inbound

import (
	"context"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/protocols/sniff"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/xds"
)

// ListenerFiltersTimeout bounds the wait for the first bytes of a stream
// whose filter chain depends on them (http_inspector): Envoy's
// listener_filters_timeout default. Past it the stream is closed, as Envoy
// closes the connection (continue_on_listener_filters_timeout false).
const ListenerFiltersTimeout = 15 * time.Second

// targetListener is the listener HBONE streams enter: the HBONE entry's
// target (istiod's main_internal) when the config has one.
func targetListener(snap *xds.Snapshot) string {
	if e := snap.HBONEEntry(); e != nil && e.HBONE.Target != "" {
		return e.HBONE.Target
	}
	return MainInternal
}

// appProtocol is what Envoy's http_inspector reports for p, as the
// ApplicationProtocolInput reads it.
func appProtocol(p sniff.Protocol) string {
	switch p {
	case sniff.HTTP1:
		return "'http/1.1'"
	case sniff.HTTP2:
		return "'h2c'"
	case sniff.Dubbo:
		return "'dubbo'" // the waypoint's own: Envoy's http_inspector does not tell Dubbo
	}
	return ""
}

// serveSniffed serves a stream whose filter chain depends on the protocol
// it speaks: the stream is accepted first (as Envoy's connect_terminate
// answers 200 once main_internal has the connection), its first bytes
// inspected, then the chain chosen and given the bytes again.
func (h *Handler) serveSniffed(ctx context.Context, st *hbone.ServerStream, snap *xds.Snapshot, name string, l *xds.Listener, in xds.MatchInput) {
	conn, err := st.Accept()
	if err != nil {
		return
	}
	buf := make([]byte, sniff.MaxBytes)
	t := time.AfterFunc(ListenerFiltersTimeout, conn.Abort)
	p, n, err := sniff.Detect(conn, buf, ListenerFiltersTimeout)
	stopped := t.Stop()
	if !stopped || (err != nil && n == 0) {
		conn.Abort()
		return
	}
	in.AppProtocol = appProtocol(p)
	fc := l.Match(in)
	if fc == nil {
		h.noChain(l, st)
		conn.Abort()
		return
	}
	info := downstreamOf(st)
	if ok, details := fc.AllowConnection(info); !ok {
		h.denied(info, st, details)
		conn.Close()
		return
	}
	rc := &replayConn{conn: conn, pending: buf[:n]}
	if fc.HTTP != nil {
		src := httpconn.NewSource(h.Store, name, in, h.Clusters, snap, fc.HTTP)
		httpconn.Serve(ctx, rc, src, info, h.HTTP)
		rc.Close()
		return
	}
	if fc.Dubbo != nil {
		dubboconn.Serve(ctx, rc, dubboconn.NewSource(h.Store, name, in, snap, fc.Dubbo), info, h.Dubbo)
		rc.Close()
		return
	}
	h.TCP.Serve(ctx, snap, fc.TCPProxy, acceptedDown{rc: rc, st: st}, info, st.Peer.String()+" -> "+st.Authority)
}

// replayConn gives the inspected bytes back before the rest of the
// stream. It does not embed the stream, so that nothing reads past it (the
// event-driven relay's TryRead would).
type replayConn struct {
	conn    *hbone.StreamConn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.conn.Read(p)
}

func (c *replayConn) Write(p []byte) (int, error) { return c.conn.Write(p) }
func (c *replayConn) CloseWrite() error           { return c.conn.CloseWrite() }
func (c *replayConn) Close() error                { return c.conn.Close() }
func (c *replayConn) Abort()                      { c.conn.Abort() }

// acceptedDown is a stream already answered: Accept hands it over, Refuse
// resets it.
type acceptedDown struct {
	rc *replayConn
	st *hbone.ServerStream
}

func (d acceptedDown) Accept() (relay.Conn, error) { return d.rc, nil }

func (d acceptedDown) Refuse(err error) { d.rc.Abort() }

func (d acceptedDown) Destination() netip.AddrPort { return d.st.Target }

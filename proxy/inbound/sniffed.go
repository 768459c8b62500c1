package inbound

import (
	"context"
	"time"

	"github.com/gowaypoint/waypoint/protocols/sniff"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
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
func (h *Handler) serveSniffed(ctx context.Context, c *downstream.Conn, st *hbone.ServerStream, snap *xds.Snapshot, name string, l *xds.Listener, in xds.MatchInput) {
	if c.Accept() != nil {
		return
	}
	buf := make([]byte, sniff.MaxBytes)
	t := time.AfterFunc(ListenerFiltersTimeout, c.Abort)
	p, n, err := sniff.Detect(c, buf, ListenerFiltersTimeout)
	stopped := t.Stop()
	if !stopped || (err != nil && n == 0) {
		c.Abort()
		return
	}
	c.Unread(buf[:n])
	in.AppProtocol = appProtocol(p)
	fc := l.Match(in)
	if fc == nil {
		h.noChain(l, st, &c.Info)
		c.Abort()
		return
	}
	if ok, details := fc.AllowConnection(&c.Info); !ok {
		h.denied(&c.Info, st, details)
		c.Close()
		return
	}
	if fc.HTTP != nil {
		src := httpconn.NewSource(h.Store, name, in, h.Clusters, snap, fc.HTTP)
		httpconn.Serve(ctx, c, src, h.HTTP)
		c.Close()
		return
	}
	if fc.Dubbo != nil {
		dubboconn.Serve(c, dubboconn.NewSource(h.Store, name, in, snap, fc.Dubbo), h.Dubbo)
		c.Close()
		return
	}
	h.TCP.Serve(snap, fc.TCPProxy, c)
}

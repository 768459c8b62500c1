package inbound

import (
	"time"

	"github.com/gowaypoint/waypoint/protocols/sniff"
	"github.com/gowaypoint/waypoint/proxy/downstream"
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

// sniffProtocol answers a stream whose filter chain depends on the
// protocol it speaks (as Envoy's connect_terminate answers 200 once
// main_internal has the connection), reads its first bytes and puts them
// back for the chain, and returns the application protocol they tell. On
// false the stream is gone (reset when it sent nothing in time).
func sniffProtocol(c *downstream.Conn) (string, bool) {
	if c.Accept() != nil {
		return "", false
	}
	buf := make([]byte, sniff.MaxBytes)
	t := time.AfterFunc(ListenerFiltersTimeout, c.Abort)
	p, n, err := sniff.Detect(c, buf, ListenerFiltersTimeout)
	stopped := t.Stop()
	if !stopped || (err != nil && n == 0) {
		c.Abort()
		return "", false
	}
	c.Unread(buf[:n])
	return appProtocol(p), true
}

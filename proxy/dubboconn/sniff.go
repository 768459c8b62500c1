package dubboconn

import (
	"io"
	"time"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// fallbackIdleTimeout is the L4 fallback's idle timeout (tcp_proxy's
// default).
const fallbackIdleTimeout = time.Hour

// sniffDubbo reads a connection's first two bytes and reports whether they
// are Dubbo's magic. It waits as long as it takes: Dubbo consumers often
// connect long before their first call (a protocol whose server speaks
// first is not for a dubbo_proxy chain). It returns the bytes read, to be
// put back (downstream.Conn.Unread).
func sniffDubbo(r io.Reader, buf *[2]byte) (isDubbo bool, prefix []byte, err error) {
	n, err := io.ReadFull(r, buf[:])
	return dubbo.IsDubbo(buf[:n]), buf[:n], err
}

// relayFallback relays a connection that does not speak Dubbo (its
// sniffed bytes put back) as opaque TCP to the cluster of the chain's
// service-level route (the route a call takes when nothing about it is
// known), so that a dubbo_proxy chain can serve a port whose protocol is
// not known for sure, as an HTTP connection manager tells HTTP/2 from
// HTTP/1.1 by its first bytes. The relay closes the connection at its end.
// It returns false when the config has no such route: the connection is
// then closed by Serve's caller.
func (c *conn) relayFallback() bool {
	b := c.src.current()
	if b.dubbo == nil || c.env.Upstreams == nil {
		return false
	}
	r := b.dubbo.Routes.Match(&l7.Request{Proto: l7.Dubbo}, nil)
	if r == nil || r.Refusal() != "" {
		return false
	}
	cluster := r.Cluster(0)
	up, host, done, err := c.env.Upstreams.clusters.ConnectTCP(c.ctx, b.snap, cluster)
	if err != nil {
		c.env.Log.Info("dubbo: the L4 fallback's upstream failed", "conn", c.desc, "cluster", cluster, "error", err)
		return true
	}
	defer done()
	res := relay.Run(c.rw.Relayed(), up, relay.Options{IdleTimeout: fallbackIdleTimeout}, nil)
	c.env.Log.Debug("dubbo: not Dubbo, relayed as TCP", "conn", c.desc, "cluster", cluster, "upstream", host,
		"bytes_sent", res.DownstreamToUpstream, "bytes_received", res.UpstreamToDownstream, "error", res.Err)
	return true
}

package waypoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gowaypoint/waypoint/proxy/listener"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// DefaultMetricsAddr is Istio's merged-metrics port, where the waypoint's
// command serves /stats/prometheus unless told otherwise.
const DefaultMetricsAddr = "0.0.0.0:15020" // an IPv4 pod's; see Wildcards

// DefaultMetricsPort is Istio's merged-metrics port.
const DefaultMetricsPort = 15020

// startMetrics serves /stats/prometheus on the metrics address, if any.
func (w *Waypoint) startMetrics() error {
	addr := w.opts.MetricsAddr
	if addr == "" || addr == "off" {
		return nil
	}
	addrs, err := ParseAddrs(addr)
	if err != nil {
		return fmt.Errorf("waypoint: metrics address: %w", err)
	}
	lns, err := listener.ListenAll(addrs)
	if err != nil {
		return fmt.Errorf("waypoint: metrics listener: %w", err)
	}
	w.metricsAddr = lns[0].Addr()
	mux := http.NewServeMux()
	mux.Handle("/stats/prometheus", stats.Handler())
	w.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range lns {
		w.serve(func() {
			if err := w.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("metrics server stopped", "error", err)
			}
		})
	}
	return nil
}

// MetricsAddr is the bound metrics address, nil when it is off.
func (w *Waypoint) MetricsAddr() net.Addr { return w.metricsAddr }

// dialCluster opens a byte stream to an endpoint of a cluster of the
// current config, over HBONE or plaintext as the cluster says: the
// tracing exporter's connection to its collector.
func (w *Waypoint) dialCluster(ctx context.Context, cluster string) (net.Conn, error) {
	conn, _, done, err := w.clusters.ConnectTCP(ctx, w.store.Load(), cluster)
	if err != nil {
		return nil, err
	}
	if c, ok := conn.(net.Conn); ok {
		return &doneConn{Conn: c, done: done}, nil
	}
	return &streamConn{Conn: conn, done: done}, nil
}

// doneConn releases the cluster's connection slot when closed.
type doneConn struct {
	net.Conn
	done func()
}

func (c *doneConn) Close() error {
	err := c.Conn.Close()
	if c.done != nil {
		c.done()
		c.done = nil
	}
	return err
}

// streamConn is an HBONE stream seen as a net.Conn for gRPC: addresses
// are nominal and deadlines are not supported (gRPC's HTTP/2 transport
// does not need them after its handshake).
type streamConn struct {
	relay.Conn
	done func()
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	if c.done != nil {
		c.done()
		c.done = nil
	}
	return err
}

func (c *streamConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// Package upstream reaches a cluster's endpoints: it picks one with the
// cluster's balancer (package lb: load balancing, circuit breakers,
// outlier detection, state kept across config reloads), opens a transport
// to it, over HBONE (a CONNECT to podIP:15008 with :authority podIP:port,
// through the shared pool) or plain TCP as the cluster says, and on that
// transport relays TCP (ConnectTCP) or speaks HTTP/1.1 or HTTP/2 through
// pooled connections (the filters.Upstream from HTTP).
//
// What this package keeps per endpoint (its HTTP/1.1 and HTTP/2 pools,
// its holds on HBONE pool keys) belongs to the balancer's host and goes
// when a config or EDS update drops the host (endpoint.go): the package
// keeps no map of endpoints of its own, so pod churn leaves nothing
// behind.
package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/xds"
)

// HBONEPort is the port every pod's ztunnel listens on for HBONE.
const HBONEPort = 15008

// Dialer opens transports to endpoints. Safe for concurrent use.
type Dialer struct {
	pool  *hbone.Pool
	certs *certs.Source
	net   net.Dialer
	// Logs writes the access_log of the tunnel a folded cluster dials
	// through (connect_originate's tcp_proxy) for each tunnel that fails
	// to connect; nil: none written.
	Logs *accesslog.Sinks

	tlsConfigs sync.Map // peer key (string) -> *tls.Config, built once per expectation
}

// NewDialer returns a Dialer that opens HBONE streams through pool with the
// identity in src.
func NewDialer(pool *hbone.Pool, src *certs.Source) *Dialer {
	return &Dialer{pool: pool, certs: src}
}

// ConnectError is a failure to reach an endpoint.
type ConnectError struct {
	Cluster  string
	Endpoint netip.AddrPort
	Err      error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("%s (cluster %q): %v", e.Endpoint, e.Cluster, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Dial opens a byte stream to the endpoint addr of cl, expecting identity
// id there when it is set, within the cluster's connect timeout. Errors are
// status errors of kind ConnectFailure. An HBONE stream goes through a pool
// key that nobody holds: the pool forgets it once its connections closed
// (hbone.Pool's sweep); the HTTP and TCP paths of Clusters dial through
// their endpoint instead, which holds its keys.
func (d *Dialer) Dial(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, id spiffe.ID) (relay.Conn, error) {
	return d.dialEndpoint(ctx, cl, addr, nil, id, nil)
}

// DialHost is Dial to a balancer host: its address, then its additional
// addresses (happy eyeballs, see dialAny).
func (d *Dialer) DialHost(ctx context.Context, cl *xds.Cluster, h *lb.Host) (relay.Conn, error) {
	return d.dialEndpoint(ctx, cl, h.Addr, h.Additional, h.Identity, nil)
}

// dialEndpoint is Dial to addr, then to the endpoint's additional
// addresses extra (nil: none), on behalf of ep (nil: none), which holds
// the HBONE pool keys used for as long as it lives.
func (d *Dialer) dialEndpoint(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, extra []netip.AddrPort, id spiffe.ID, ep *endpoint) (relay.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.ConnectTimeout)
	defer cancel()
	var conn relay.Conn
	var err error
	start := time.Now()
	if len(extra) == 0 {
		conn, err = d.dialOne(ctx, cl, addr, id, ep)
	} else {
		conn, err = d.dialAny(ctx, cl, happyEyeballsOrder(addr, extra), id, ep)
	}
	if err != nil {
		d.tunnelFailed(cl, addr, start, err)
		return nil, status.New(status.ConnectFailure, &ConnectError{Cluster: cl.Name, Endpoint: addr, Err: err})
	}
	return conn, nil
}

// dialOne opens the cluster's transport to one address.
func (d *Dialer) dialOne(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, id spiffe.ID, ep *endpoint) (relay.Conn, error) {
	switch cl.Transport {
	case xds.TransportPlaintext:
		return d.dialTCP(ctx, cl, addr)
	case xds.TransportTLS:
		return d.dialTLS(ctx, cl, addr)
	default:
		return d.dialHBONE(ctx, cl, addr, id, ep)
	}
}

// DialWith is Dial for a connection that starts with header (a PROXY
// protocol header; nil: none), written before the connection is returned.
func (d *Dialer) DialWith(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, id spiffe.ID, header []byte) (relay.Conn, error) {
	return d.dialAddrs(ctx, cl, addr, nil, id, nil, header)
}

// dial is DialWith to host h on behalf of ep (nil: none), as dialEndpoint.
func (d *Dialer) dial(ctx context.Context, cl *xds.Cluster, h *lb.Host, ep *endpoint, header []byte) (relay.Conn, error) {
	return d.dialAddrs(ctx, cl, h.Addr, h.Additional, h.Identity, ep, header)
}

func (d *Dialer) dialAddrs(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, extra []netip.AddrPort, id spiffe.ID, ep *endpoint, header []byte) (relay.Conn, error) {
	conn, err := d.dialEndpoint(ctx, cl, addr, extra, id, ep)
	if err != nil || len(header) == 0 {
		return conn, err
	}
	if _, err := conn.Write(header); err != nil {
		conn.Close()
		return nil, status.New(status.ConnectFailure, &ConnectError{Cluster: cl.Name, Endpoint: addr, Err: err})
	}
	return conn, nil
}

// tunnelFailed writes the tunnel's access_log for a failed HBONE dial of
// a folded cluster, as Envoy's connect_originate tcp_proxy logs a tunnel it
// could not connect: flag UF, the pod's HBONE address as the upstream
// host, the pod address as the connection's local address.
func (d *Dialer) tunnelFailed(cl *xds.Cluster, addr netip.AddrPort, start time.Time, err error) {
	if d.Logs == nil || len(cl.TunnelAccessLog) == 0 || cl.Transport != xds.TransportHBONE {
		return
	}
	d.Logs.Emit(cl.TunnelAccessLog, &accesslog.Record{Start: start, Duration: time.Since(start),
		Downstream: &filters.Downstream{LocalAddr: addr, Destination: addr, Authority: addr.String()},
		Flags:      filters.FlagOf(status.ConnectFailure), Cluster: cl.TunnelCluster,
		Host: netip.AddrPortFrom(addr.Addr(), cl.HBONEPortOrDefault()), Failure: err.Error()})
}

func (d *Dialer) dialTCP(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort) (relay.Conn, error) {
	nc, err := d.dialSocket(ctx, cl, addr)
	if err != nil {
		return nil, err
	}
	return relay.NewTCP(nc), nil
}

// dialTLS originates TLS to addr (a DestinationRule's tls SIMPLE): the
// handshake, certificate checks included, is part of the connect, so a
// refused certificate is a connect failure (UF), as in Envoy.
func (d *Dialer) dialTLS(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort) (relay.Conn, error) {
	nc, err := d.dialSocket(ctx, cl, addr)
	if err != nil {
		return nil, err
	}
	host, _ := ctx.Value(sniKey{}).(string)
	tc := tls.Client(nc, cl.UpstreamTLS.Originate.ConfigFor(host, cl.AutoSNI, cl.AutoSANValidation))
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tlsConn{tc, nc}, nil
}

// sniKey is the context key of the request's host for dialTLS (auto_sni,
// auto_san_validation): pick.dialContext.
type sniKey struct{}

// requestHost is an :authority without its port, lower-cased; "" when
// empty.
func requestHost(authority []byte) string {
	if len(authority) == 0 {
		return ""
	}
	a := string(authority)
	if h, _, err := net.SplitHostPort(a); err == nil {
		a = h
	}
	return strings.ToLower(strings.Trim(a, "[]"))
}

// tlsConn is an originated TLS connection; Abort resets its TCP connection.
type tlsConn struct {
	*tls.Conn
	tcp *net.TCPConn
}

func (c tlsConn) Abort() {
	c.tcp.SetLinger(0)
	c.tcp.Close()
}

func (d *Dialer) dialSocket(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort) (*net.TCPConn, error) {
	nd := d.net
	if cl.TCPKeepalive == nil {
		nd.KeepAlive = -1 // off, as in Envoy (Go would turn it on)
	} else {
		nd.KeepAliveConfig = keepalive(cl.TCPKeepalive)
	}
	nc, err := nd.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return nc.(*net.TCPConn), nil
}

// keepalive is the TCP keep-alive a cluster's upstream_connection_options
// tcp_keepalive asks of its plaintext connections: on, each setting it
// leaves out at the system's value.
func keepalive(ka *xds.TCPKeepalive) net.KeepAliveConfig {
	c := net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
	if ka.Time > 0 {
		c.Idle = ka.Time
	}
	if ka.Interval > 0 {
		c.Interval = ka.Interval
	}
	if ka.Probes > 0 {
		c.Count = int(ka.Probes)
	}
	return c
}

func (d *Dialer) dialHBONE(ctx context.Context, cl *xds.Cluster, addr netip.AddrPort, id spiffe.ID, ep *endpoint) (relay.Conn, error) {
	expect := certs.PeerExpectation{
		ID:          id,
		SANExact:    cl.UpstreamTLS.SANExact,
		SANPrefixes: cl.UpstreamTLS.SANPrefixes,
	}
	key := peerKey(expect)
	dest := hbone.Dest{
		Addr:      netip.AddrPortFrom(addr.Addr(), cl.HBONEPortOrDefault()),
		Authority: addr.String(),
		PeerKey:   key,
		TLS:       d.clientTLS(key, expect),
	}
	if ep != nil {
		if err := ep.hold(d.pool, dest); err != nil {
			return nil, err
		}
	}
	return d.pool.Connect(ctx, dest)
}

func (d *Dialer) clientTLS(key string, expect certs.PeerExpectation) *tls.Config {
	if v, ok := d.tlsConfigs.Load(key); ok {
		return v.(*tls.Config)
	}
	v, _ := d.tlsConfigs.LoadOrStore(key, d.certs.ClientTLSConfig(expect))
	return v.(*tls.Config)
}

// peerKey renders an expectation canonically, so that equal expectations
// from different snapshots share pooled connections.
func peerKey(e certs.PeerExpectation) string {
	var b strings.Builder
	b.WriteString(e.ID.String())
	b.WriteString("|td=")
	b.WriteString(e.TrustDomain)
	for _, s := range e.SANExact {
		b.WriteString("|=")
		b.WriteString(strconv.Quote(s))
	}
	for _, s := range e.SANPrefixes {
		b.WriteString("|^")
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

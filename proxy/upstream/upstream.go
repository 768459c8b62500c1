// Package upstream opens connections to a cluster's endpoints: it picks an
// endpoint, then reaches it over HBONE (a CONNECT to podIP:15008 with
// :authority podIP:port, through the shared pool) or over plain TCP, as the
// cluster says.
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
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/xds"
)

// HBONEPort is the port every pod's ztunnel listens on for HBONE.
const HBONEPort = 15008

// Connector opens upstream connections. It outlives config snapshots:
// balancing state is kept per cluster name, so a reload does not reset it.
// Safe for concurrent use.
type Connector struct {
	pool   *hbone.Pool
	certs  *certs.Source
	dialer net.Dialer

	tlsConfigs sync.Map // peer key (string) -> *tls.Config, built once per expectation
	rr         sync.Map // cluster name -> *atomic.Uint64, round-robin position
}

// NewConnector returns a Connector that opens HBONE streams through pool
// with the identity in src.
func NewConnector(pool *hbone.Pool, src *certs.Source) *Connector {
	return &Connector{pool: pool, certs: src}
}

// ConnectError is a failure to reach a picked endpoint; it is wrapped in a
// status error of kind ConnectFailure.
type ConnectError struct {
	Cluster  string
	Endpoint netip.AddrPort
	Err      error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("%s (cluster %q): %v", e.Endpoint, e.Cluster, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Connect picks an endpoint of cl and opens a byte stream to it, bounded by
// the cluster's connect timeout. The returned endpoint is the one reached,
// or tried. Errors are status errors: NoCluster for a nil cl,
// NoHealthyUpstream when there is no endpoint, ConnectFailure otherwise.
func (c *Connector) Connect(ctx context.Context, cl *xds.Cluster) (relay.Conn, netip.AddrPort, error) {
	if cl == nil {
		return nil, netip.AddrPort{}, status.New(status.NoCluster, nil)
	}
	ep, ok := c.pick(cl)
	if !ok {
		return nil, netip.AddrPort{}, status.New(status.NoHealthyUpstream, fmt.Errorf("cluster %q has no endpoint", cl.Name))
	}
	ctx, cancel := context.WithTimeout(ctx, cl.ConnectTimeout)
	defer cancel()
	var conn relay.Conn
	var err error
	switch cl.Transport {
	case xds.TransportPlaintext:
		conn, err = c.dialTCP(ctx, ep.Address)
	default:
		conn, err = c.dialHBONE(ctx, cl, ep)
	}
	if err != nil {
		return nil, ep.Address, status.New(status.ConnectFailure, &ConnectError{Cluster: cl.Name, Endpoint: ep.Address, Err: err})
	}
	return conn, ep.Address, nil
}

func (c *Connector) dialTCP(ctx context.Context, addr netip.AddrPort) (relay.Conn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return relay.TCP{TCPConn: nc.(*net.TCPConn)}, nil
}

func (c *Connector) dialHBONE(ctx context.Context, cl *xds.Cluster, ep xds.Endpoint) (relay.Conn, error) {
	expect := certs.PeerExpectation{
		ID:          ep.Identity,
		SANExact:    cl.UpstreamTLS.SANExact,
		SANPrefixes: cl.UpstreamTLS.SANPrefixes,
	}
	key := peerKey(expect)
	return c.pool.Connect(ctx, hbone.Dest{
		Addr:      netip.AddrPortFrom(ep.Address.Addr(), HBONEPort),
		Authority: ep.Address.String(),
		PeerKey:   key,
		TLS:       c.clientTLS(key, expect),
	})
}

func (c *Connector) clientTLS(key string, expect certs.PeerExpectation) *tls.Config {
	if v, ok := c.tlsConfigs.Load(key); ok {
		return v.(*tls.Config)
	}
	v, _ := c.tlsConfigs.LoadOrStore(key, c.certs.ClientTLSConfig(expect))
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

// pick chooses an endpoint by weighted round robin.
func (c *Connector) pick(cl *xds.Cluster) (xds.Endpoint, bool) {
	eps := cl.Endpoints
	switch len(eps) {
	case 0:
		return xds.Endpoint{}, false
	case 1:
		return eps[0], true
	}
	var total uint64
	for _, ep := range eps {
		total += uint64(max(ep.Weight, 1))
	}
	v, ok := c.rr.Load(cl.Name)
	if !ok {
		v, _ = c.rr.LoadOrStore(cl.Name, new(atomic.Uint64))
	}
	n := (v.(*atomic.Uint64).Add(1) - 1) % total
	for _, ep := range eps {
		w := uint64(max(ep.Weight, 1))
		if n < w {
			return ep, true
		}
		n -= w
	}
	return eps[len(eps)-1], true
}

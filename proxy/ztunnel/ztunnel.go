// Package ztunnel is a small stand-in for Istio's ztunnel on a machine
// without Kubernetes, used by the hbone tool, the demo and the tests:
//
//   - Destination is the ztunnel in front of a pod: it terminates HBONE on
//     podIP:15008 and forwards each CONNECT to its authority ip:port on this
//     machine, refusing (400) an authority whose IP is not its own, as
//     ztunnel does.
//   - Source is the ztunnel beside a client: it accepts plaintext TCP and
//     carries each connection over an HBONE CONNECT (to the waypoint).
//
// It keeps to ztunnel's wire behaviour, not to its features: no policy, no
// workload discovery.
package ztunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/acceptor"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// Destination forwards HBONE streams to local addresses. It is an
// hbone.Handler.
type Destination struct {
	// LocalIPs are the pod IPs this ztunnel serves; an authority with
	// another IP is refused with 400. Empty serves any IP.
	LocalIPs []netip.Addr
	// DialTimeout bounds the connect to the pod; default 10 s.
	DialTimeout time.Duration
	Log         *slog.Logger
}

// ServeHBONE implements hbone.Handler.
func (d *Destination) ServeHBONE(ctx context.Context, st *hbone.ServerStream) {
	if len(d.LocalIPs) > 0 && !slices.Contains(d.LocalIPs, st.Target.Addr()) {
		st.Refuse(http.StatusBadRequest, fmt.Sprintf("authority IP %s is not served here", st.Target.Addr()))
		return
	}
	timeout := d.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	var dialer net.Dialer
	up, err := dialer.DialContext(dctx, "tcp", st.Target.String())
	cancel()
	if err != nil {
		st.Refuse(http.StatusServiceUnavailable, "connect to pod: "+err.Error())
		return
	}
	down, err := st.Accept()
	if err != nil {
		up.Close()
		return
	}
	res := relay.Run(down, relay.NewTCP(up.(*net.TCPConn)), relay.Options{}, nil)
	d.Log.Debug("ztunnel: stream ended", "peer", st.Peer.String(), "authority", st.Authority,
		"bytes_in", res.DownstreamToUpstream, "bytes_out", res.UpstreamToDownstream, "error", res.Err)
}

// Source carries each accepted TCP connection over an HBONE CONNECT to Via
// with :authority Authority. Safe for concurrent use.
type Source struct {
	Pool      *hbone.Pool
	Via       netip.AddrPort // the waypoint's HBONE address
	Authority string         // the original destination, VIP:port or podIP:port
	PeerKey   string         // the identity expected at Via, canonical form
	TLS       *tls.Config    // verifies that identity
	Log       *slog.Logger
	// Header holds extra CONNECT fields, as ztunnel sends its workload's
	// baggage; may be nil. Read-only.
	Header *l7.Header

	acc acceptor.Acceptor
}

// Serve accepts on ln until Shutdown.
func (s *Source) Serve(ln net.Listener) error {
	return s.acc.Serve(ln, func(c net.Conn) { s.serve(c.(*net.TCPConn)) })
}

func (s *Source) serve(c *net.TCPConn) {
	up, err := s.Pool.Connect(context.Background(), hbone.Dest{
		Addr: s.Via, Authority: s.Authority, PeerKey: s.PeerKey, TLS: s.TLS, Header: s.Header,
	})
	if err != nil {
		s.Log.Info("ztunnel: CONNECT failed", "via", s.Via, "authority", s.Authority, "error", err)
		relay.NewTCP(c).Abort()
		return
	}
	res := relay.Run(relay.NewTCP(c), up, relay.Options{}, nil)
	s.Log.Debug("ztunnel: stream ended", "authority", s.Authority,
		"bytes_out", res.DownstreamToUpstream, "bytes_in", res.UpstreamToDownstream, "error", res.Err)
}

// Shutdown stops accepting and waits for connections until ctx is done.
func (s *Source) Shutdown(ctx context.Context) error { return s.acc.Drain(ctx) }

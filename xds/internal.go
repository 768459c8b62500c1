package xds

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// Envoy internal listeners, as istiod lays out a waypoint, are folded away
// at Build time rather than run as in-process hops:
//
//   - a cluster whose endpoints are internal addresses of connect_originate
//     (istiod's inbound-vip clusters), each with the pod's ip:port in its
//     envoy.filters.listener.original_dst metadata, becomes an HBONE
//     cluster of those pod addresses: connect_originate's tcp_proxy tunnels
//     (tunneling_config hostname %DOWNSTREAM_LOCAL_ADDRESS%: the pod
//     ip:port) to an ORIGINAL_DST cluster with upstream_port_override 15008
//     and an UpstreamTlsContext, whose SAN matchers and connect_timeout the
//     folded cluster takes;
//   - a cluster whose one endpoint is connect_originate without that
//     metadata (istiod's encap, behind direct-tcp and direct-http) becomes an
//     HBONE cluster of the stream's own original destination
//     (OriginalDestination), which connect_authority passes on in Envoy;
//   - a cluster whose endpoint is another internal listener (main_internal,
//     the target of the HBONE entry) is kept for the HBONE entry and refused
//     by the data path, as is anything reaching double HBONE
//     (inner_connect_originate), which is decoded but not served.
//
// This gives the same bytes on the wire as Envoy's internal listeners with
// one HBONE hop and no extra copy.

// resolveInternal folds internal endpoints and resolves the HBONE entry's
// target. Errors name the resource.
func (s *Snapshot) resolveInternal() error {
	for _, name := range slices.Sorted(maps.Keys(s.Clusters)) {
		c := s.Clusters[name]
		if err := s.foldCluster(c); err != nil {
			return &ResourceError{Kind: kindCluster, Name: name, Err: err}
		}
	}
	for _, l := range s.Listeners {
		if err := s.checkTunnels(l); err != nil {
			return &ResourceError{Kind: kindListener, Name: l.Name, Err: err}
		}
		e := l.HBONE
		if e == nil {
			continue
		}
		c := s.Clusters[e.Cluster]
		if c.InternalListener == "" {
			return &ResourceError{Kind: kindListener, Name: l.Name, Err: fmt.Errorf(
				"filter_chains[0].filters[0]: CONNECT goes to cluster %q, which must have one internal endpoint naming the listener the streams enter", e.Cluster)}
		}
		e.Target = c.InternalListener
	}
	return nil
}

// foldCluster folds c if its endpoints are internal. Errors are relative
// to the cluster.
func (s *Snapshot) foldCluster(c *Cluster) error {
	if c.OriginalDst != nil {
		c.Refusal = "an ORIGINAL_DST cluster is only supported behind an internal listener such as connect_originate"
	}
	internal := 0
	for _, ep := range c.Endpoints {
		if ep.Internal != nil {
			internal++
		}
	}
	switch {
	case internal == 0 && c.Transport != transportInternal:
		return nil
	case internal == 0 && len(c.Endpoints) > 0:
		// Socket addresses behind internal_upstream are reached with its inner
		// transport socket, raw_buffer (TLS inside is refused when decoded): as
		// Envoy does for istiod's inline ServiceEntry endpoints, which are no
		// ambient workloads (plain TCP to the address, no HBONE), or TLS
		// originated to the address when the inner socket is such TLS.
		c.Transport = TransportPlaintext
		if c.UpstreamTLS.Originate != nil {
			c.Transport = TransportTLS
		}
		return nil
	case internal == 0:
		c.Transport = TransportHBONE // no endpoint yet (EDS): nothing to fold
		return nil
	case c.Transport != transportInternal:
		return errAt("transport_socket", "endpoints that are internal addresses need an internal_upstream transport socket")
	case internal != len(c.Endpoints):
		return errAt("load_assignment", "internal addresses mixed with socket addresses are not supported")
	}
	target := c.Endpoints[0].Internal.Listener
	for _, ep := range c.Endpoints {
		if ep.Internal.Listener != target {
			return errAt("load_assignment", "endpoints naming different internal listeners (%q, %q) are not supported", target, ep.Internal.Listener)
		}
	}
	l := s.listeners[target]
	switch {
	case l == nil:
		return fmt.Errorf("endpoints: no internal listener named %q", target)
	case !l.Internal:
		return fmt.Errorf("endpoints: listener %q is not an internal listener", target)
	}
	if c.UpstreamTLS.Originate != nil {
		c.Refusal = "TLS origination to an ambient workload (TLS inside HBONE) is not supported yet"
	}
	tunnel, err := s.originate(l)
	if err != nil {
		return fmt.Errorf("endpoints reach internal listener %q: %w", target, err)
	}
	if tunnel == nil {
		if len(c.Endpoints) != 1 || c.Endpoints[0].Address.IsValid() {
			return fmt.Errorf("endpoints: internal listener %q is entered by the HBONE listener only: want one endpoint without a pod address", target)
		}
		c.InternalListener = target
		c.Refusal = fmt.Sprintf("it sends to internal listener %q, which only the HBONE listener feeds", target)
		c.Endpoints = nil
		c.Transport = TransportHBONE
		return nil
	}
	if tunnel.Name == "" { // originate's stand-in for double HBONE
		c.Refusal = tunnel.Refusal
	}
	c.FoldedFrom = target
	withAddr := 0
	eps := make([]Endpoint, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		if ep.Address.IsValid() {
			withAddr++
		}
		ep.Internal = nil
		eps[i] = ep
	}
	switch {
	case withAddr == len(eps):
		c.Endpoints = eps
	case withAddr == 0 && len(eps) == 1:
		c.Endpoints = nil
		c.OriginalDestination = true
	default:
		return errors.New("endpoints: each endpoint reaching connect_originate needs the pod address (original_dst local), or the cluster has one endpoint without it (encap)")
	}
	c.Transport = TransportHBONE
	c.UpstreamTLS = tunnel.UpstreamTLS
	c.HBONEPort = tunnel.OriginalDst.PortOverride
	c.ConnectTimeout = tunnel.ConnectTimeout
	if tunnel.Name != "" {
		c.TunnelAccessLog, c.TunnelCluster = l.FilterChains[0].TCPProxy.AccessLog, tunnel.Name
	}
	return nil
}

// doubleHBONETarget is the tunnel hostname of istiod's double HBONE
// listeners (multi-network), decoded but not served.
const doubleHBONETarget = "%FILTER_STATE(istio.double_hbone.hbone_target_address:PLAIN)%"

// originate returns the ORIGINAL_DST HBONE cluster an internal listener
// shaped like connect_originate tunnels to, or nil for another internal
// listener (main_internal).
func (s *Snapshot) originate(l *Listener) (*Cluster, error) {
	if len(l.FilterChains) != 1 || l.matcher != nil || l.FilterChains[0].TCPProxy == nil || l.FilterChains[0].TCPProxy.Tunnel == nil {
		return nil, nil
	}
	fc := l.FilterChains[0]
	tp := fc.TCPProxy
	c := s.Clusters[tp.Cluster]
	switch {
	case len(fc.Leading) > 0 || tp.Tunnel.Hostname == doubleHBONETarget:
		// inner_connect_originate, outer_connect_originate: double HBONE.
		return &Cluster{Refusal: fmt.Sprintf("internal listener %q (double HBONE) is not supported yet", l.Name),
			OriginalDst: &OriginalDst{PortOverride: defaultHBONEPort}, ConnectTimeout: defaultConnectTimeout}, nil
	case tp.Tunnel.Hostname != downstreamLocalAddress:
		return nil, fmt.Errorf("tunneling_config.hostname %q is not supported (only %s)", tp.Tunnel.Hostname, downstreamLocalAddress)
	case len(tp.Tunnel.Headers) > 0:
		return nil, fmt.Errorf("tunneling_config.headers_to_add is not supported yet")
	case c.OriginalDst == nil:
		return nil, fmt.Errorf("its tcp_proxy tunnels to cluster %q, which is not ORIGINAL_DST", tp.Cluster)
	case c.Transport != TransportHBONE:
		return nil, fmt.Errorf("its tcp_proxy tunnels to cluster %q, which has no UpstreamTlsContext (HBONE is mTLS)", tp.Cluster)
	case c.OriginalDst.PortOverride == 0:
		return nil, fmt.Errorf("cluster %q needs original_dst_lb_config.upstream_port_override (15008)", tp.Cluster)
	}
	return c, nil
}

// checkTunnels refuses a tunneling_config where it would be ignored: on a
// listener that is not an internal one shaped like connect_originate. Such
// a listener's tcp_proxy access_log is written for the tunnels that fail
// to connect (a folded cluster dials the pod's HBONE itself): one that
// would log other tunnels is refused (istiod filters it to UF).
func (s *Snapshot) checkTunnels(l *Listener) error {
	shaped := l.Internal && len(l.FilterChains) == 1 && l.matcher == nil
	for i, fc := range l.FilterChains {
		if fc.TCPProxy == nil || fc.TCPProxy.Tunnel == nil {
			continue
		}
		if !shaped {
			return errAt(idx("filter_chains", i)+".filters", "tcp_proxy tunneling_config is only supported on an internal listener with one filter chain (connect_originate)")
		}
		if accesslog.MayLogAny(fc.TCPProxy.AccessLog, 0, filters.FlagUF) {
			return errAt(idx("filter_chains", i)+".filters", "the access_log of a tunnelling tcp_proxy is written for tunnels that fail "+
				"to connect only: filter it with response_flag_filter UF (a line per tunnel is not written yet)")
		}
	}
	return nil
}

// HBONEEntry returns the listener that terminates HBONE (istiod's
// connect_terminate), or nil when the config has none.
func (s *Snapshot) HBONEEntry() *Listener {
	if s == nil {
		return nil
	}
	for _, l := range s.Listeners {
		if l.HBONE != nil {
			return l
		}
	}
	return nil
}

package xds

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// tcpProxyFilterName is the canonical name of the one network filter
// implemented so far.
const tcpProxyFilterName = "envoy.filters.network.tcp_proxy"

// decodeFilterChain decodes a filter chain's name and filters, and validates
// its filter_chain_match, which the listener compiles (or, as Envoy does,
// ignores when the listener has a filter_chain_matcher or this is the default
// chain). Errors are relative to the chain.
func decodeFilterChain(pb *listenerv3.FilterChain, b *build) (*FilterChain, error) {
	if _, _, err := decodeChainMatch(pb.GetFilterChainMatch()); err != nil {
		return nil, at("filter_chain_match", err)
	}
	c := &FilterChain{Name: pb.GetName()}
	filters := pb.GetFilters()
	if len(filters) == 0 {
		return nil, errAt("filters", "want one terminal network filter (%s or %s), got none", tcpProxyFilterName, hcmFilterName)
	}
	var stats *metrics.Overrides // of an istio.stats network filter, for the tcp_proxy
	for i, f := range filters {
		if n, ok, err := decodeNetworkRBAC(b, f); ok {
			if err != nil {
				return nil, at(idx("filters", i), err)
			}
			if i == len(filters)-1 {
				return nil, errAt(idx("filters", i), "%s must come before a terminal filter", f.GetName())
			}
			if len(c.ExtAuthz) > 0 {
				return nil, errAt(idx("filters", i), "%s after envoy.filters.network.ext_authz is not supported", f.GetName())
			}
			c.RBAC = append(c.RBAC, n)
			continue
		}
		if n, ok, err := decodeNetworkExtAuthz(b, f); ok {
			if err != nil {
				return nil, at(idx("filters", i), err)
			}
			if i == len(filters)-1 {
				return nil, errAt(idx("filters", i), "%s must come before a terminal filter", f.GetName())
			}
			c.ExtAuthz = append(c.ExtAuthz, n)
			continue
		}
		if ov, ok, err := decodeNetworkStats(f); ok {
			if err != nil {
				return nil, at(idx("filters", i), err)
			}
			if i == len(filters)-1 {
				return nil, errAt(idx("filters", i), "%s must come before a terminal filter", f.GetName())
			}
			c.Leading = append(c.Leading, f.GetName())
			stats = ov
			continue
		}
		if i < len(filters)-1 {
			// Filters before the terminal one: see network_filters.go.
			name, err := decodeLeadingNetworkFilter(f)
			if err != nil {
				return nil, at(idx("filters", i), err)
			}
			c.Leading = append(c.Leading, name)
			continue
		}
		if d, ok, err := decodeDubboFilter(f, b); ok {
			if err != nil {
				return nil, at(idx("filters", i), err)
			}
			c.Dubbo = d
			continue
		}
		tp, hcm, err := decodeNetworkFilter(f, b)
		if err != nil {
			return nil, at(idx("filters", i), err)
		}
		c.TCPProxy, c.HTTP = tp, hcm
	}
	if stats != nil {
		if c.TCPProxy == nil {
			return nil, errAt("filters", "%s overrides are only supported before a %s (or in an HttpConnectionManager)", metrics.StatsFilterName, tcpProxyFilterName)
		}
		c.TCPProxy.Stats = stats
		c.TCPProxy.Dubbo.Stats = stats
	}
	return c, nil
}

// decodeNetworkFilter decodes one network filter: a tcp_proxy or an
// http_connection_manager. A filter is identified by the type of its
// typed_config, as in Envoy; its name is descriptive.
func decodeNetworkFilter(f *listenerv3.Filter, b *build) (*TCPProxy, *HTTPConnectionManager, error) {
	a := f.GetTypedConfig()
	if a == nil {
		return nil, nil, at("typed_config", errRequired)
	}
	var tcp tcpproxyv3.TcpProxy
	var hcm hcmv3.HttpConnectionManager
	switch a.MessageName() {
	case nameOf(&tcp):
		if err := unpack(a, &tcp); err != nil {
			return nil, nil, at("typed_config", err)
		}
		tp, err := decodeTCPProxy(&tcp, b.clusters)
		return tp, nil, at("typed_config", err)
	case nameOf(&hcm):
		h, err := decodeHCM(a, b)
		return nil, h, at("typed_config", err)
	}
	return nil, nil, fmt.Errorf("unsupported network filter %q (%s)", f.GetName(), a.GetTypeUrl())
}

// checkLogClusters refuses access logs that send to a cluster (an
// OpenTelemetry collector, a gRPC access log service) the config does not
// have, as Envoy refuses a gRPC service of an unknown cluster.
func checkLogClusters(logs []*accesslog.Logger, clusters map[string]*Cluster) error {
	for _, l := range logs {
		var c, kind string
		switch {
		case l.OTel != nil:
			c, kind = l.OTel.Cluster, "an OpenTelemetry access log"
		case l.ALS != nil:
			c, kind = l.ALS.Cluster, "a gRPC access log"
		default:
			continue
		}
		if clusters[c] == nil {
			return errAt("access_log", "%s to unknown cluster %q", kind, c)
		}
	}
	return nil
}

// decodeTCPProxy decodes a TcpProxy whose fields the allowlist has checked.
func decodeTCPProxy(pb *tcpproxyv3.TcpProxy, clusters map[string]*Cluster) (*TCPProxy, error) {
	tp := &TCPProxy{StatPrefix: pb.GetStatPrefix(), Cluster: pb.GetCluster()}
	switch {
	case tp.Cluster == "":
		return nil, at("cluster", errRequired)
	case clusters[tp.Cluster] == nil:
		return nil, errAt("cluster", "unknown cluster %q", tp.Cluster)
	}
	var err error
	if tp.IdleTimeout, err = duration(pb.GetIdleTimeout(), defaultTCPIdleTimeout); err != nil {
		return nil, at("idle_timeout", err)
	}
	if tp.MaxDownstreamConnectionDuration, err = duration(pb.GetMaxDownstreamConnectionDuration(), 0); err != nil {
		return nil, at("max_downstream_connection_duration", err)
	}
	if tc := pb.GetTunnelingConfig(); tc != nil {
		if tp.Tunnel, err = decodeTunneling(tc); err != nil {
			return nil, at("tunneling_config", err)
		}
	}
	if tp.AccessLog, err = accesslog.Decode(pb.GetAccessLog()); err != nil {
		return nil, err
	}
	if err := checkLogClusters(tp.AccessLog, clusters); err != nil {
		return nil, err
	}
	if tp.Dubbo, err = dubboOnTCP(tp); err != nil {
		return nil, err
	}
	// At most one policy (the proto's rule); source_ip is the only kind
	// the allowlist lets through.
	for i, hp := range pb.GetHashPolicy() {
		if hp.GetSourceIp() == nil {
			return nil, errAt(idx("hash_policy", i), "one of source_ip is required")
		}
		tp.HashSourceIP = true
	}
	return tp, nil
}

package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// lbPolicies maps the supported lb_policy values.
var lbPolicies = map[clusterv3.Cluster_LbPolicy]LBPolicy{
	clusterv3.Cluster_ROUND_ROBIN:   LBPolicyRoundRobin,
	clusterv3.Cluster_LEAST_REQUEST: LBPolicyLeastRequest,
	clusterv3.Cluster_RANDOM:        LBPolicyRandom,
	clusterv3.Cluster_RING_HASH:     LBPolicyRingHash,
	clusterv3.Cluster_MAGLEV:        LBPolicyMaglev,
}

// decodeCluster decodes and validates one cluster. eds holds the decoded
// endpoints of each ClusterLoadAssignment by cluster_name. Errors are
// relative to the cluster.
func decodeCluster(pb *clusterv3.Cluster, eds map[string][]Endpoint) (*Cluster, error) {
	if err := checkSupported(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetName() == "" {
		return nil, at("name", errRequired)
	}
	c := &Cluster{Name: pb.GetName(), Metadata: pb.GetMetadata(), Raw: pb}

	var err error
	if c.ConnectTimeout, err = duration(pb.GetConnectTimeout(), defaultConnectTimeout); err != nil {
		return nil, at("connect_timeout", err)
	}
	if c.ConnectTimeout == 0 {
		return nil, errAt("connect_timeout", "must be > 0")
	}

	policy, ok := lbPolicies[pb.GetLbPolicy()]
	if !ok {
		return nil, errAt("lb_policy", "%s is not supported yet", pb.GetLbPolicy())
	}
	c.LBPolicy = policy

	switch pb.GetType() {
	case clusterv3.Cluster_STATIC:
		if pb.GetEdsClusterConfig() != nil {
			return nil, errAt("eds_cluster_config", "only applies to an EDS cluster")
		}
		if la := pb.GetLoadAssignment(); la != nil {
			if c.Endpoints, err = decodeEndpoints(la); err != nil {
				return nil, at("load_assignment", err)
			}
		}
	case clusterv3.Cluster_EDS:
		if pb.GetLoadAssignment() != nil {
			return nil, errAt("load_assignment", "must not be set on an EDS cluster: its endpoints come from EDS")
		}
		if err := checkEDSConfig(pb.GetEdsClusterConfig()); err != nil {
			return nil, at("eds_cluster_config", err)
		}
		service := pb.GetEdsClusterConfig().GetServiceName()
		if service == "" {
			service = c.Name
		}
		c.Endpoints = eds[service]
	default:
		return nil, errAt("type", "%s is not supported yet", pb.GetType())
	}

	if c.Transport, c.UpstreamTLS, err = decodeTransportSocket(pb.GetTransportSocket()); err != nil {
		return nil, at("transport_socket", err)
	}

	if err := validate(pb); err != nil {
		return nil, err
	}
	return c, nil
}

// checkEDSConfig accepts an EDS source of ADS, the only one the waypoint
// will have: endpoints then arrive with the other resources through Build.
// initial_fetch_timeout is validated here and left to the ADS client, which
// owns the wait for the first response.
func checkEDSConfig(ec *clusterv3.Cluster_EdsClusterConfig) error {
	src := ec.GetEdsConfig()
	switch {
	case ec == nil || src == nil:
		return errAt("eds_config", "required (ads: {})")
	case src.GetAds() == nil:
		return errAt("eds_config", "only ads is supported")
	case src.GetResourceApiVersion() != corev3.ApiVersion_V3 && src.GetResourceApiVersion() != corev3.ApiVersion_AUTO:
		return errAt("eds_config.resource_api_version", "only V3 is supported, got %s", src.GetResourceApiVersion())
	}
	if _, err := duration(src.GetInitialFetchTimeout(), 0); err != nil {
		return at("eds_config.initial_fetch_timeout", err)
	}
	return nil
}

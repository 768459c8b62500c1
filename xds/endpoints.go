package xds

import (
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// metadataNamespace is the filter_metadata namespace the waypoint reads from
// endpoint and cluster metadata; identityKey, dubboVersionKey and
// dubboGroupKey are its endpoint keys, dubboOnTCPKey its cluster key.
const (
	metadataNamespace = "waypoint"
	identityKey       = "identity"
	dubboVersionKey   = "dubbo_version"
	dubboGroupKey     = "dubbo_group"
	dubboOnTCPKey     = "dubbo_on_tcp"
)

// assignment is a decoded ClusterLoadAssignment.
type assignment struct {
	endpoints []Endpoint
	// overprovisioning is policy.overprovisioning_factor; 0 when absent.
	overprovisioning uint32
}

// decodeEndpoints flattens a ClusterLoadAssignment's endpoints, of every
// priority, in config order; each Endpoint keeps its priority, locality
// and locality weight. As Envoy does, a locality listed twice in one
// priority is refused. names allows host names (a DNS cluster's). Errors
// are relative to the ClusterLoadAssignment.
func decodeEndpoints(cla *endpointv3.ClusterLoadAssignment, names bool) (assignment, error) {
	if err := checkSupported(cla.ProtoReflect()); err != nil {
		return assignment{}, err
	}
	var a assignment
	if f := cla.GetPolicy().GetOverprovisioningFactor(); f != nil {
		if f.GetValue() == 0 {
			return assignment{}, errAt("policy.overprovisioning_factor", "must be > 0")
		}
		a.overprovisioning = f.GetValue()
	}
	type key struct {
		priority uint32
		locality Locality
	}
	var seen map[key]bool
	for i, lle := range cla.GetEndpoints() {
		l := lle.GetLocality()
		k := key{lle.GetPriority(), Locality{Region: l.GetRegion(), Zone: l.GetZone(), SubZone: l.GetSubZone()}}
		if len(cla.GetEndpoints()) > 1 {
			if seen[k] {
				return assignment{}, errAt(idx("endpoints", i)+".locality", "locality %s is already listed at priority %d", k.locality, k.priority)
			}
			if seen == nil {
				seen = make(map[key]bool, len(cla.GetEndpoints()))
			}
			seen[k] = true
		}
		for j, lbe := range lle.GetLbEndpoints() {
			ep, err := decodeEndpoint(lbe, names)
			if err != nil {
				return assignment{}, at(idx("endpoints", i)+"."+idx("lb_endpoints", j), err)
			}
			ep.Priority, ep.Locality, ep.LocalityWeight = k.priority, k.locality, lle.GetLoadBalancingWeight().GetValue()
			a.endpoints = append(a.endpoints, ep)
		}
	}
	if err := validate(cla); err != nil {
		return assignment{}, err
	}
	return a, nil
}

// decodeEndpoint decodes one LbEndpoint; names allows a host name as its
// address. Errors are relative to it.
func decodeEndpoint(lbe *endpointv3.LbEndpoint, names bool) (Endpoint, error) {
	e := lbe.GetEndpoint()
	if e == nil {
		return Endpoint{}, at("endpoint", errRequired)
	}
	if e.GetAddress() == nil {
		return Endpoint{}, at("endpoint.address", errRequired)
	}
	ep := Endpoint{Weight: 1, Metadata: lbe.GetMetadata()}
	if ia := e.GetAddress().GetEnvoyInternalAddress(); ia != nil {
		var err error
		if ep.Internal, ep.Address, err = internalEndpoint(ia, lbe.GetMetadata()); err != nil {
			return Endpoint{}, err
		}
	} else if names {
		addr, name, err := dnsEndpoint(e.GetAddress())
		if err != nil {
			return Endpoint{}, at("endpoint.address", err)
		}
		ep.Address, ep.Hostname = addr, name
	} else {
		addr, err := socketAddress(e.GetAddress(), false)
		if err != nil {
			return Endpoint{}, at("endpoint.address", err)
		}
		ep.Address = addr
	}
	for i, aa := range e.GetAdditionalAddresses() {
		path := "endpoint." + idx("additional_addresses", i) + ".address"
		if ep.Internal != nil {
			return Endpoint{}, errAt("endpoint.additional_addresses", "not supported with an envoy_internal_address")
		}
		if aa.GetAddress() == nil {
			return Endpoint{}, errAt(path, "required")
		}
		addr, err := socketAddress(aa.GetAddress(), false)
		if err != nil {
			return Endpoint{}, at(path, err)
		}
		if addr == ep.Address || slices.Contains(ep.AdditionalAddresses, addr) {
			return Endpoint{}, errAt(path, "%s is already an address of the endpoint", addr)
		}
		ep.AdditionalAddresses = append(ep.AdditionalAddresses, addr)
	}
	// istiod sets HEALTHY on a ready pod's endpoints; Envoy balances over
	// HEALTHY and UNKNOWN alike. The others change which hosts are picked.
	switch hs := lbe.GetHealthStatus(); hs {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
	default:
		return Endpoint{}, errAt("health_status", "%s is not supported yet (only HEALTHY and UNKNOWN)", hs)
	}
	var err error
	if w := lbe.GetLoadBalancingWeight(); w != nil {
		if w.GetValue() == 0 {
			return Endpoint{}, errAt("load_balancing_weight", "must be > 0")
		}
		ep.Weight = w.GetValue()
	}
	if err = endpointMetadata(lbe.GetMetadata(), &ep); err != nil {
		return Endpoint{}, at("metadata", err)
	}
	return ep, nil
}

// endpointMetadata reads filter_metadata["waypoint"]: "identity" into
// ep.Identity, "dubbo_version" and "dubbo_group" into ep.DubboVersion and
// ep.DubboGroup. Other keys in the waypoint's own namespace are errors, so
// a typo is not ignored. Errors are relative to the Metadata.
func endpointMetadata(md *corev3.Metadata, ep *Endpoint) error {
	ns := md.GetFilterMetadata()[metadataNamespace]
	path := key("filter_metadata", metadataNamespace)
	for k, v := range ns.GetFields() {
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		switch k {
		case identityKey:
			if !ok {
				return errAt(path+"."+k, "want a spiffe:// URI string")
			}
			id, err := spiffe.Parse(s.StringValue)
			if err != nil {
				return at(path+"."+k, err)
			}
			ep.Identity = id
		case dubboVersionKey, dubboGroupKey:
			if !ok || s.StringValue == "" {
				return errAt(path+"."+k, "want a non-empty string")
			}
			if k == dubboVersionKey {
				ep.DubboVersion = s.StringValue
			} else {
				ep.DubboGroup = s.StringValue
			}
		default:
			return errAt(path+"."+k, "unknown key (%q, %q and %q are defined)", identityKey, dubboVersionKey, dubboGroupKey)
		}
	}
	return nil
}

// indexEndpoints decodes each ClusterLoadAssignment, keyed by cluster_name.
func indexEndpoints(clas []*endpointv3.ClusterLoadAssignment) (map[string]assignment, error) {
	eds := make(map[string]assignment, len(clas))
	for i, cla := range clas {
		if cla == nil {
			return nil, fmt.Errorf("endpoints[%d]: nil ClusterLoadAssignment", i)
		}
		name := cla.GetClusterName()
		if _, dup := eds[name]; dup {
			return nil, &ResourceError{Kind: kindEndpoints, Name: name, Err: fmt.Errorf("duplicate cluster_name")}
		}
		a, err := decodeEndpoints(cla, false)
		if err != nil {
			return nil, &ResourceError{Kind: kindEndpoints, Name: name, Err: err}
		}
		if a.endpoints == nil {
			a.endpoints = []Endpoint{}
		}
		eds[name] = a
	}
	return eds, nil
}

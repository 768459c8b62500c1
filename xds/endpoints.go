package xds

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// metadataNamespace is the filter_metadata namespace the waypoint reads from
// endpoint metadata; identityKey is its only key so far.
const (
	metadataNamespace = "waypoint"
	identityKey       = "identity"
)

// decodeEndpoints flattens a ClusterLoadAssignment's priority 0 endpoints in
// config order. Locality weights are accepted and, as in Envoy without
// locality-weighted load balancing, not used. Errors are relative to the
// ClusterLoadAssignment.
func decodeEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	if err := checkSupported(cla.ProtoReflect()); err != nil {
		return nil, err
	}
	var eps []Endpoint
	for i, lle := range cla.GetEndpoints() {
		for j, lbe := range lle.GetLbEndpoints() {
			ep, err := decodeEndpoint(lbe)
			if err != nil {
				return nil, at(idx("endpoints", i)+"."+idx("lb_endpoints", j), err)
			}
			eps = append(eps, ep)
		}
	}
	if err := validate(cla); err != nil {
		return nil, err
	}
	return eps, nil
}

// decodeEndpoint decodes one LbEndpoint. Errors are relative to it.
func decodeEndpoint(lbe *endpointv3.LbEndpoint) (Endpoint, error) {
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
	} else {
		addr, err := socketAddress(e.GetAddress(), false)
		if err != nil {
			return Endpoint{}, at("endpoint.address", err)
		}
		ep.Address = addr
	}
	var err error
	if w := lbe.GetLoadBalancingWeight(); w != nil {
		if w.GetValue() == 0 {
			return Endpoint{}, errAt("load_balancing_weight", "must be > 0")
		}
		ep.Weight = w.GetValue()
	}
	if ep.Identity, err = endpointIdentity(lbe.GetMetadata()); err != nil {
		return Endpoint{}, at("metadata", err)
	}
	return ep, nil
}

// endpointIdentity reads filter_metadata["waypoint"]["identity"]. Other keys
// in the waypoint's own namespace are errors, so a typo is not ignored.
// Errors are relative to the Metadata.
func endpointIdentity(md *corev3.Metadata) (spiffe.ID, error) {
	ns := md.GetFilterMetadata()[metadataNamespace]
	path := key("filter_metadata", metadataNamespace)
	var id spiffe.ID
	for k, v := range ns.GetFields() {
		if k != identityKey {
			return spiffe.ID{}, errAt(path+"."+k, "unknown key (only %q is defined)", identityKey)
		}
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return spiffe.ID{}, errAt(path+"."+k, "want a spiffe:// URI string")
		}
		var err error
		if id, err = spiffe.Parse(s.StringValue); err != nil {
			return spiffe.ID{}, at(path+"."+k, err)
		}
	}
	return id, nil
}

// indexEndpoints decodes each ClusterLoadAssignment, keyed by cluster_name.
func indexEndpoints(clas []*endpointv3.ClusterLoadAssignment) (map[string][]Endpoint, error) {
	eds := make(map[string][]Endpoint, len(clas))
	for i, cla := range clas {
		if cla == nil {
			return nil, fmt.Errorf("endpoints[%d]: nil ClusterLoadAssignment", i)
		}
		name := cla.GetClusterName()
		if _, dup := eds[name]; dup {
			return nil, &ResourceError{Kind: kindEndpoints, Name: name, Err: fmt.Errorf("duplicate cluster_name")}
		}
		eps, err := decodeEndpoints(cla)
		if err != nil {
			return nil, &ResourceError{Kind: kindEndpoints, Name: name, Err: err}
		}
		if eps == nil {
			eps = []Endpoint{}
		}
		eds[name] = eps
	}
	return eds, nil
}

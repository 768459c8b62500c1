package xds

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// Cluster is one decoded upstream cluster. Read-only after Build; safe for
// concurrent use.
type Cluster struct {
	// Name is the cluster's unique name within its snapshot.
	Name string
	// ConnectTimeout bounds connection establishment. Envoy's default is 5s.
	ConnectTimeout time.Duration
	// LBPolicy is the load balancing policy; LBPolicyRoundRobin by default.
	LBPolicy LBPolicy
	// Transport is how endpoints are reached; TransportHBONE by default (see
	// the package documentation: this differs from Envoy).
	Transport Transport
	// Endpoints are the cluster's endpoints, priority 0 only, flattened across
	// localities in config order: from load_assignment for a STATIC cluster,
	// from the ClusterLoadAssignment passed to Build for an EDS cluster (none
	// when there is none, as in Envoy). Shared with other clusters of the same
	// EDS service name; never modified.
	Endpoints []Endpoint
	// UpstreamTLS holds the accepted peer identities; only meaningful for
	// TransportHBONE. Empty means any identity chained to the mesh root.
	UpstreamTLS UpstreamTLS
	// Metadata is the cluster's metadata, as given; may be nil. Must not be modified.
	Metadata *corev3.Metadata
	// Raw is the resource this was decoded from. It must not be modified.
	Raw *clusterv3.Cluster
}

// defaultConnectTimeout is Envoy's cluster connect_timeout default.
const defaultConnectTimeout = 5 * time.Second

// LBPolicy is a cluster's load balancing policy.
type LBPolicy int

// The decoded policies. Only LBPolicyRoundRobin is implemented by the data
// path so far; the others are decoded for a later issue.
const (
	LBPolicyRoundRobin   LBPolicy = iota // ROUND_ROBIN, the default
	LBPolicyLeastRequest                 // LEAST_REQUEST
	LBPolicyRandom                       // RANDOM
	LBPolicyRingHash                     // RING_HASH
	LBPolicyMaglev                       // MAGLEV
)

// String returns Envoy's name for the policy.
func (p LBPolicy) String() string {
	switch p {
	case LBPolicyRoundRobin:
		return "ROUND_ROBIN"
	case LBPolicyLeastRequest:
		return "LEAST_REQUEST"
	case LBPolicyRandom:
		return "RANDOM"
	case LBPolicyRingHash:
		return "RING_HASH"
	case LBPolicyMaglev:
		return "MAGLEV"
	}
	return "LBPolicy(?)"
}

// Transport is how a cluster reaches its endpoints.
type Transport int

const (
	// TransportHBONE is the ambient default: an mTLS HTTP/2 connection to
	// podIP:15008 carrying a CONNECT stream with :authority podIP:port.
	TransportHBONE Transport = iota
	// TransportPlaintext is plain TCP to the endpoint's address.
	TransportPlaintext
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case TransportHBONE:
		return "HBONE"
	case TransportPlaintext:
		return "plaintext"
	}
	return "Transport(?)"
}

// UpstreamTLS is what the waypoint checks of an HBONE peer's certificate, on
// top of it chaining to the mesh root.
type UpstreamTLS struct {
	// SANExact and SANPrefixes are URI SAN matchers, from an
	// UpstreamTlsContext's default_validation_context.match_typed_subject_alt_names.
	// A peer is accepted when a URI SAN equals one of SANExact or starts with
	// one of SANPrefixes; when both are empty, any peer is.
	SANExact, SANPrefixes []string
}

// Endpoint is one upstream endpoint.
type Endpoint struct {
	// Address is the pod's ip:port: the HBONE :authority, or the plaintext
	// destination.
	Address netip.AddrPort
	// Weight is load_balancing_weight, 1 by default.
	Weight uint32
	// Identity is the expected peer identity, from the endpoint metadata
	// filter_metadata["waypoint"]["identity"] (a spiffe:// URI). The zero ID
	// means any identity in the trust domain.
	Identity spiffe.ID
	// Metadata is the endpoint's metadata, as given; may be nil. Must not be modified.
	Metadata *corev3.Metadata
}

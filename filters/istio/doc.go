// Package istio holds the HTTP filters istiod adds to a waypoint's chains
// whose work is telemetry only: Istio's peer metadata filters
// (waypoint_downstream_peer_metadata, waypoint_upstream_peer_metadata,
// io.istio.http.peer_metadata.Config in a TypedStruct) and
// envoy.filters.http.grpc_stats. With the configs istiod writes they
// change nothing a request or a response carries: peer metadata discovered
// through workload discovery only fills Envoy's filter state for metrics
// labels, and grpc_stats only counts messages (it marks a gRPC stream's
// message counts wanted; the connection manager counts them). They are
// checked whole: a config that would change traffic (peer metadata
// propagated in headers, say) is refused, naming the field, rather than
// ignored.
package istio

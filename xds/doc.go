// Package xds is the waypoint's configuration model: Envoy v3 resources
// (go-control-plane types) decoded into an immutable, validated [Snapshot].
//
// Both sources of configuration go through [Build]: the bootstrap file read by
// [LoadBootstrapFile] and, later, resources received over ADS. Decoding is a
// pure function of the protos; it returns our own types or an error that names
// the resource and the field path, e.g.
//
//	listener "main_internal": filter_chains[2].filters[0]: unsupported network filter "envoy.filters.network.rbac" (type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC)
//	cluster "backend": connect_timeout: must be > 0
//
// # Strictness
//
// Every populated field must be one the waypoint implements. A field that is
// set but not implemented is an error ("not supported yet"), never silently
// ignored. The rule is enforced uniformly by a reflective check against a
// per-message allowlist (see allowlist.go); a field is added there when its
// meaning is implemented. Unknown fields (from a newer API) are errors too.
// Descriptive fields that change no behaviour (name, stat_prefix,
// alt_stat_name, metadata, traffic_direction) are allowed.
//
// # Upstream transport: HBONE by default
//
// A cluster without a transport_socket reaches its endpoints over HBONE: an
// mTLS HTTP/2 connection to the endpoint's podIP:15008 carrying a CONNECT
// stream whose :authority is podIP:port. This differs from Envoy, where an
// absent transport_socket means plaintext. An explicit
// envoy.transport_sockets.raw_buffer means plain TCP to the endpoint, and
// envoy.transport_sockets.tls with an UpstreamTlsContext naming the SDS
// secrets "default" and "ROOTCA" (what istiod writes for connect_originate)
// means HBONE using the waypoint's own certificate and mesh root, with the
// context's URI SAN matchers as the accepted peer identities.
//
// # Filter chain selection
//
// [Listener.Match] follows Envoy: either the classic filter_chain_match
// (destination port, then longest destination prefix, then the default
// chain), or, when set, the generic filter_chain_matcher (xds.type.matcher.v3),
// which then replaces filter_chain_match entirely. Both are compiled at decode
// time so that matching allocates nothing.
//
// # Concurrency
//
// Everything reachable from a [Snapshot] is read-only after [Build] returns,
// including the raw protos it keeps for the config dump, and is safe for
// concurrent use. The data path reads the current snapshot through a [Store].
package xds

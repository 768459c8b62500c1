// Package l7 is the protocol-neutral request/response model: what the
// codecs (HTTP/1.1, HTTP/2, gRPC, Dubbo) decode into and encode from, and
// all that filters and the router ever see.
//
// Ownership: a Request or Response is owned by one stream at a time and is
// reused by its codec for the next stream on the same connection, so its
// byte slices (header fields, authority, path) are valid only until the
// stream ends. Keep a copy (string(b)) of anything needed later. Nothing in
// this package is safe for concurrent use; one goroutine drives a stream.
//
// Header names are lower-case everywhere in the model (codecs lower-case
// HTTP/1 names as they parse, as Envoy does), so lookups compare bytes
// exactly. Set and Add do not lower-case: a name a filter sets is checked
// at the codec edge when the message is sent (Header.CheckNames), where
// HTTP/2 lower-cases it and a name that is not a token fails the message
// with a status.InvalidHeader error, nothing sent. Pseudo-headers (:method, :scheme, :authority, :path) are fields
// of Request, not Header entries; HTTP/1's Host becomes Authority.
package l7

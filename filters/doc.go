// Package filters will hold the HTTP filter chain: the small interface a
// filter implements (request headers, body and trailers going in, the
// response going out, local replies), the factories registered under Envoy
// filter names that build a chain per service from an HttpConnectionManager's
// http_filters, and the built-in filters, the router last.
//
// It arrives with the L7 core (issue 3); today the waypoint relays opaque TCP
// and this package has no code. It may import protocols, never proxy.
package filters

// Package filters is the HTTP filter chain: the interface a filter
// implements, the registry of filter factories keyed by Envoy filter names
// and type URLs, and the Chain that runs a stream through them.
//
// A filter sees the request on the way in (headers, and the body and
// trailers if it wraps Request.Body) and the response on the way out, and
// may answer locally (Stream.SendLocalReply), which the codec renders in
// its own protocol. A chain is built once per service from config (the
// http_filters of an HttpConnectionManager, one factory call each) and is
// shared by every stream of that service: filters are called concurrently
// and must keep per-stream state on the Stream, never in themselves.
//
// In Go a filter may block its stream's goroutine, so "stop, then continue
// later" (an authorization call, a delay) is a plain synchronous call.
//
// A factory builds its filter with a BuildContext: a stats Scope on the
// waypoint's registry, a logger and the cluster manager, so that filters
// need nothing from proxy or telemetry.
//
// See docs/filters.md for how to write one. This package and the filters
// under it import protocols and internal, never proxy, telemetry, xds or
// cmd (internal/importrules checks it).
package filters

// Status is what a filter returns: go on with the chain, or stop it.
type Status int

const (
	// Continue passes the stream to the next filter.
	Continue Status = iota
	// Stop ends the chain here; the filter has set a local reply
	// (SendLocalReply returns Stop for that purpose).
	Stop
)

// Filter is one configured filter. Implement RequestFilter,
// ResponseFilter, or both (or Terminal for the last filter of a chain);
// Register checks that a factory's filter type does, or embeds NoOp.
//
// A filter that owns something (a goroutine, a connection, a cache it
// refreshes) implements io.Closer. The config that built it owns it and
// closes it once when that config is dropped: replaced by a new one, or
// refused, or built only to be validated (xds.Snapshot.Close). Streams that
// started on the old config may still be running then, so a filter stays
// safe to call after Close. Per-route configs (PerRouteFactory) that are
// io.Closers are closed the same way.
type Filter interface{}

// RequestFilter sees each request after its headers are in, in chain order.
// It may change Request (headers, path), wrap Request.Body to see or
// change the body and trailers, or answer locally.
type RequestFilter interface {
	OnRequest(s *Stream) Status
}

// ResponseFilter sees each response before it is written downstream, in
// reverse chain order, local replies included. It may change Response or
// wrap Response.Body; returning Stop after SendLocalReply replaces the
// response.
type ResponseFilter interface {
	OnResponse(s *Stream) Status
}

// Terminal is the last filter of a chain (the router): it produces
// s.Response, from upstream or as a local reply. An error it returns is
// answered locally with the status the error's kind maps to
// (protocols/status).
type Terminal interface {
	Serve(s *Stream) error
}

// Package http1 is the HTTP/1.1 codec (RFC 9112): ServerConn reads
// requests from and writes responses to the proxy's downstream, ClientConn
// writes requests to and reads responses from an upstream, both over any
// byte stream (a TCP connection or an HBONE tunnel stream).
//
// It is written by hand for speed. net/http allocates per request by design
// (a Request, a map of string headers, a context, buffered writers: 20 to 70
// allocations per exchange) and hands work between goroutines; this codec
// instead parses into structures reused for the life of the connection,
// with header names and values as slices of the read buffer, and reaches
// zero allocations per request in steady state. Speed never buys
// ambiguity: framing follows RFC 9112 strictly, and a message that two
// implementations could read differently (both Content-Length and
// Transfer-Encoding, differing lengths, bare CR or LF, obs-fold,
// whitespace before a colon) is refused, never forwarded.
//
// Buffers. Each connection has one read buffer (ReadBufferSize, grown up to
// MaxHeaderBytes for one header section) and one write buffer
// (WriteBufferSize). A message head lives in the read buffer until the
// stream ends, so the slices in l7.Request and l7.Response stay valid
// until the next ReadRequest or ReadResponse; header names are lower-cased
// in place there. Writes are buffered: a head and a small body leave in
// one write, and a streamed body is flushed after every Read of it that
// returned data.
//
// Concurrency. A connection is driven by one goroutine, except that the
// body of a request (server side) or response (client side) may be read by
// a second goroutine while the first writes: this is what full-duplex
// streaming needs. Neither type starts a goroutine.
package http1

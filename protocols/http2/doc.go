// Package http2 is the proxy's HTTP/2 connection engine, server and
// client, speaking the l7 request model directly. It serves HTTP/2 and
// gRPC inside HBONE tunnels (ServeConn: prior knowledge, no TLS of its
// own, the caller hands over a byte stream), HTTP/2 to upstreams
// (ClientConn) and the HBONE tunnel itself (CONNECT streams both ways:
// OpenStream, ServerStream's full-duplex Read and Write).
//
// # Why not x/net's server and transport
//
// Framing and HPACK are golang.org/x/net/http2's (Framer, hpack.Encoder,
// hpack.Decoder); connection and stream management are ours, because
// x/net's Server and Transport are net/http-shaped: an http.Request or
// Response with string header maps per stream, goroutines and pipes per
// stream, and the allocations that come with them (about 90 per unary
// round trip, see BenchmarkXNetUnaryRoundTrip). The proxy also needs
// what they cannot
// give: the l7 model decoded straight from HPACK; full-duplex streams
// with independent half-close (our END_STREAM while the peer still sends,
// which x/net's server cannot do: a response ends when its handler
// returns); and Envoy's limits and abuse defences under our control.
//
// # Goroutines
//
// A server connection runs on ServeConn's caller, which is its read loop;
// each stream's Handler runs on a goroutine ServeConn starts and waits
// for. A ClientConn has one read-loop goroutine (NewClientConn to
// Close or connection loss), and RoundTrip sends a request body of
// unknown or large size from a goroutine the stream owns, ending with the
// body or the stream. Both sides may start a short-lived flusher: when the
// read loop (which must never block on the transport) has queued frames
// and nobody is writing, the flusher writes them and ends. Every one of
// these is tracked by the connection, which waits for them before its
// end is reported. Timers (idle, keep-alive, drain) only flip state or
// start a tracked goroutine.
//
// # Write path
//
// One buffered writer per connection (outBuf: up to 64 KiB, taken from a
// pool while it holds anything), behind a FIFO hand-off lock (writer.go).
// A stream goroutine takes the lock itself (no channel hand-off to a
// writer goroutine on the hot path), writes its frames and passes the
// lock to the next waiter; the last holder, finding nobody waiting,
// flushes: one write to the transport per batch. DATA frames carry at
// most 16 KiB - 9 bytes, so that a frame fills one TLS record. While
// other streams wait, DATA is written one frame per turn, so streams
// sending bodies take turns round robin; alone, a stream writes all the
// frames its windows allow under one hold. HPACK encoding happens under the lock, so
// blocks reach the wire in the order they changed the dynamic table.
// Frames from the read loop (SETTINGS and PING acks, RST_STREAM,
// WINDOW_UPDATE, GOAWAY, a 431) go to a bounded queue that the holder
// writes first. Stream goroutines never queue: a peer that does not read
// blocks them, and the queue bound (MaxOutboundFrames,
// MaxOutboundControlFrames) closes the connection before it can grow our
// memory.
//
// # Flow control
//
// Sending: DATA waits for both the stream's and the connection's send
// window (and is cut to them). Receiving: a stream buffers at most its
// window (InitialStreamWindow, default 64 KiB; the connection as a whole
// InitialConnWindow, default 1 MiB) in pooled chunks; a peer exceeding a
// window gets FLOW_CONTROL_ERROR (stream or connection). Windows are
// given back only as the reader consumes, by WINDOW_UPDATE once half the
// window is due (as Envoy and x/net do); padding and DATA for closed or
// abandoned streams are given back at once.
//
// # Limits and defences (defaults from Envoy's Http2ProtocolOptions)
//
//   - Streams: MaxConcurrentStreams (100) advertised and enforced with
//     REFUSED_STREAM. Handlers of streams the peer reset may still run;
//     beyond MaxConcurrentStreams running handlers new streams wait, and
//     more than 4 × MaxConcurrentStreams waiting closes the connection.
//   - Header blocks: MaxHeaderListSize (60 KiB, RFC 7541 size) and
//     MaxHeaderCount (100). A block over a limit stops being emitted at
//     once and is decoded to its end only to keep HPACK in step, then the
//     request is refused with a 431 (the response a client can act on)
//     and RST_STREAM(NO_ERROR) if it was still sending; other streams
//     carry on. A response over a limit fails its stream with
//     PROTOCOL_ERROR.
//   - CONTINUATION flood (CVE-2024-27316 family): a header block whose
//     encoded size passes twice MaxHeaderListSize, or that takes more
//     than 2 × MaxHeaderListSize/16 KiB + 8 frames, closes the
//     connection (GOAWAY ENHANCE_YOUR_CALM) as soon as it does: nothing
//     is buffered beyond one frame, nothing decoded beyond the bound.
//   - Rapid reset (CVE-2023-44487), as Envoy's overload premature-reset
//     keys: a stream the client resets before we sent response headers
//     and within PrematureResetMinLifetime (1 s) of its start is
//     premature; when premature resets reach half of
//     PrematureResetStreamCount (500) before that many streams closed,
//     or half of all closed streams after, GOAWAY(ENHANCE_YOUR_CALM) and
//     close.
//   - Floods: PING and SETTINGS answers count against
//     MaxOutboundControlFrames (1000 queued); consecutive empty
//     DATA/HEADERS/CONTINUATION frames against MaxConsecutiveEmptyFrames
//     (1); PRIORITY frames against MaxPriorityFramesPerStream (100) ×
//     (1 + streams opened); WINDOW_UPDATE frames against 5 + 2 ×
//     (streams opened + MaxWindowUpdatesPerDataFrame (10) × DATA frames
//     sent). Exceeding any closes the connection (ENHANCE_YOUR_CALM).
//   - Every limit above that closes a connection is named in the
//     *ConnError ServeConn returns (Defence, DefenceOf), under the name of
//     Envoy's counter for it, so that the caller counts and logs it; a
//     handler may close its connection for what its streams do
//     (ServerStream.CloseConn, DefenceRefusedStreams).
//   - Timeouts: HandshakeTimeout (10 s) for the preface and first
//     SETTINGS; IdleTimeout (off) with no stream open; keep-alive PINGs
//     (off); RequestHeadersTimeout (off) for a request header block that
//     comes in more than one frame (408 and RST_STREAM(NO_ERROR), one
//     timer per connection); ShutdownNotice (off) for the GOAWAY notice
//     of a shutdown that asks for it (ErrShutdownNotice); DrainTimeout
//     (30 s) for a graceful shutdown; 1 s for a final GOAWAY to a peer
//     that does not read.
//
// # Messages
//
// Pseudo-headers map to l7.Request fields (:method interned through
// l7.InternMethod, :scheme, :authority, :path, :protocol) and :status to
// l7.Response.Status; regular fields are copied into the message's
// Header arena (requests are pooled per stream, so a steady connection
// decodes without allocating beyond what hpack itself does for
// literals). Requests are checked as RFC 9113 §8 requires: lower-case
// names, no connection-specific fields, te only "trailers", pseudo-headers
// first, known and not repeated, CONNECT with :method and :authority only
// (extended CONNECT, RFC 8441, is advertised and accepted), host agreeing
// with :authority (and standing in for it when absent), content-length
// matching the DATA; cookies are joined with "; ". A malformed request
// is reset with PROTOCOL_ERROR and harms no other stream.
//
// On the way out, fields that repeat (names, content types,
// authorities...) are indexed as strings interned per connection; fields
// that vary per message or are secret (:path, content-length, dates,
// request and trace ids, authorization, cookies; nghttp2's list, which
// Envoy used) are sent as never-indexed literals through a zero-copy view
// (unsafe.String) that lives only for the hpack call, since x/net's
// encoder keeps every field it indexes and l7 fields are reused byte
// slices.
//
// # Shutdown
//
// Cancelling ServeConn's context, or ClientConn.Shutdown, is graceful:
// GOAWAY, streams in flight finish, then close. A peer's GOAWAY is
// honoured the same way; on a client, streams above its last stream id
// fail with a GoAwayError (IsUnprocessed: safe to retry). Closing the
// transport (server) or ClientConn.Close is the hard stop.
//
// Conformance: h2spec passes in full (see README.md and TestH2Spec).
package http2

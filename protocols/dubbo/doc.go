// Package dubbo reads and writes Dubbo 2 frames (the dubbo:// protocol)
// for a proxy: it splits a byte stream into frames, decodes a request body
// as far as routing and policy need, shows the call to filters as an
// l7.Request, and writes the frames a proxy sends itself (local error
// replies, heartbeats, the readonly event, a request re-encoded with
// changed attachments). proxy/dubboconn drives it; docs/dubbo.md describes
// what the waypoint does with Dubbo as a whole.
//
// # The wire format
//
// A frame is a 16-byte header (see Header: magic 0xdabb, flags with the
// serialization id, status, request id, body length, big-endian) and a
// body. Reader returns whole frames into pooled buffers; the header alone
// is enough to relay a frame, so a body of any serialization can be
// forwarded by its header. Only Hessian2 bodies (serialization id 2, the
// Dubbo default) are decoded: a request body is five strings (Dubbo
// version, service path, service version, method, parameter descriptor),
// the arguments, then the attachments map, as Apache Dubbo's DubboCodec
// writes it. DecodeRequest reads the strings and the attachments and steps
// over the arguments (ParamCount says how many) without building them;
// DecodeRequestPrefix stops after the strings; DecodeResponse and
// DecodeEvent read what a response or an event carries.
//
// # Why it is written by hand
//
// The Go implementation, github.com/apache/dubbo-go-hessian2 (dubbo-go's
// codec), is the reference this package is tested against, but it cannot
// serve a proxy's data path: it decodes every value into interface{}
// values through reflection, has no way to skip a value it does not need,
// and decodes the whole body to reach the attachments, which come last.
// Decoding a typical call with it costs about 130 allocations and 10 KB;
// DecodeRequest and FillRequest allocate nothing (the budgets are in
// bench/alloc-budgets.txt, the comparison in bench/README.md) and take a
// few percent of its time. Byte slices returned by the decoders point into
// the frame (or the Invocation's own scratch), so a call whose attachments
// no filter changed is forwarded byte for byte, with only its request id
// rewritten (SetID). Where the reference decoder and Java disagree, this
// package follows Java (hessian-lite's Hessian2Input), because a Java
// provider is what reads the bytes after the proxy; package hessian2 lists
// those differences.
//
// # Defaults and limits
//
//   - A frame body over ReaderConfig.MaxBodyBytes (DefaultMaxBodyBytes,
//     8 MiB, Dubbo's payload limit, which Envoy's dubbo_proxy applies
//     too) is refused from its header: Next returns ErrTooLarge and skips
//     the body. A bad magic number, or a stream that ends inside a frame,
//     ends the stream (the error is sticky).
//   - An attachments map of more than DefaultMaxAttachments (100) entries,
//     nesting deeper than 64, or more than 1024 class definitions in one
//     body is refused as a *BodyError (see Limits and hessian2.Limits);
//     a body that does not parse is too. The proxy answers such a call
//     StatusBadRequest and forwards nothing of it.
//   - DefaultMaxInFlight (1024) is the bound suggested for calls in flight
//     on one downstream connection; the connection manager enforces it
//     and answers StatusServerThreadpoolExhausted past it.
//   - The Reader's buffer is DefaultReadBufferSize (16 KiB); larger frames
//     are read straight into their own buffer.
//
// # What it does not do
//
// It decodes no argument values except for route parameter matching (Arg:
// strings, ints, longs, booleans), reads no serialization but Hessian2,
// and knows nothing of Dubbo 3's Triple, which is gRPC over HTTP/2 and
// goes through the HTTP codecs. Connections, request id remapping,
// heartbeat timers and timeouts belong to proxy/dubboconn.
//
// # Concurrency
//
// A Reader is used by one goroutine and starts none. An Invocation or a
// ResponseInfo decodes one body at a time and is reused to avoid
// allocating; an Interner is per connection. A Frame belongs to whoever
// holds it until Release. The Append functions are pure.
package dubbo

package http2

import (
	"bytes"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// headerEncoder turns l7 fields into an HPACK block with x/net's encoder.
// It belongs to the writer and is used only by the write-lock holder, so
// that blocks reach the wire in the order they changed the dynamic table.
//
// The encoder keeps every field it indexes, so an indexed field must be an
// immutable string: l7 fields are byte slices reused across streams. We
// index what repeats (names, content types, authorities...) as strings
// interned per connection (bounded, allocated once each), and send what
// varies per message (:path, content-length, dates, ids; nghttp2's list,
// which Envoy used) and what is secret (authorization, cookies, per RFC
// 7541 §7.1) as never-indexed literals through a zero-copy string view
// that lives only for the WriteField call.
//
// Field names reach the wire lower-case, as HTTP/2 requires (RFC 9113
// §8.2.1): the model's names are, but a filter may Set "X-Caller". The
// caller checks a block's names first (checkNames), so that a name that
// is not a token is refused before anything of the block changes the
// dynamic table; when one has upper-case letters, fields lower-cases each
// name into lower, so that names already lower-case cost no copy.
type headerEncoder struct {
	enc    *hpack.Encoder
	buf    bytes.Buffer
	intern map[string]string
	num    [20]byte
	lower  []byte // a name lower-cased, valid until the next field
}

// checkNames checks the field names of h, a block about to be encoded
// (what names it in the error): a name that is not a token fails the
// message with an error of kind status.InvalidHeader, before anything is
// sent; upper says that the encoder must lower-case names.
func checkNames(h *l7.Header, what string) (upper bool, err error) {
	upper, bad := h.CheckNames()
	if bad >= 0 {
		return false, status.New(status.InvalidHeader, fmt.Errorf("http2: %s field name %q is not a token", what, h.At(bad).Name))
	}
	return upper, nil
}

const (
	// maxInterned bounds the per-connection intern table; it is emptied
	// when full (the encoder's own 4 KiB table still holds what it uses).
	maxInterned = 512
	// maxIndexedValue: longer values are not indexed (they would evict
	// most of a 4 KiB table).
	maxIndexedValue = 256
)

func (e *headerEncoder) init() {
	e.enc = hpack.NewEncoder(&e.buf)
	e.intern = make(map[string]string)
}

func (e *headerEncoder) setMaxTableSize(v uint32) {
	e.enc.SetMaxDynamicTableSizeLimit(v)
}

// view returns b as a string without copying; the string must not be kept.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (e *headerEncoder) internString(b []byte) string {
	if s, ok := e.intern[string(b)]; ok {
		return s
	}
	if len(e.intern) >= maxInterned {
		clear(e.intern)
	}
	s := string(b)
	e.intern[s] = s
	return s
}

// field encodes one field with the indexing policy above.
func (e *headerEncoder) field(name, value []byte) {
	if len(value) > maxIndexedValue || !indexable(name) {
		e.enc.WriteField(hpack.HeaderField{Name: view(name), Value: view(value), Sensitive: true})
		return
	}
	e.enc.WriteField(hpack.HeaderField{Name: e.internString(name), Value: e.internString(value)})
}

// fieldStr encodes a field whose name and value are immutable strings.
func (e *headerEncoder) fieldStr(name, value string) {
	e.enc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// indexable reports whether a field of this name is worth indexing.
func indexable(name []byte) bool {
	switch string(name) {
	case ":path", "content-length", "age", "etag", "if-modified-since",
		"if-none-match", "location", "set-cookie", "last-modified", "date",
		"authorization", "proxy-authorization", "cookie", "x-request-id",
		"traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid", "x-b3-sampled", "grpc-timeout", "x-forwarded-client-cert":
		return false
	}
	return true
}

// skipOnWire reports whether a model field (its lower-case name) must not
// be sent in HTTP/2: connection-specific fields (RFC 9113 §8.2.2), host
// (it is :authority) and te other than "trailers".
func skipOnWire(name, value []byte) bool {
	switch string(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
		return true
	case "te":
		return string(value) != "trailers"
	}
	return false
}

// fields encodes h's fields, their names lower-cased when upper (see
// checkNames).
func (e *headerEncoder) fields(h *l7.Header, upper bool) {
	for _, f := range h.Fields() {
		name := f.Name
		if upper {
			e.lower = l7.AppendLower(e.lower[:0], name)
			name = e.lower
		}
		if !skipOnWire(name, f.Value) {
			e.field(name, f.Value)
		}
	}
}

// contentLength encodes a content-length field for a known length when
// the header does not carry one.
func (e *headerEncoder) contentLength(h *l7.Header, n int64) {
	if n < 0 || h.Has("content-length") {
		return
	}
	v := strconv.AppendInt(e.num[:0], n, 10)
	e.enc.WriteField(hpack.HeaderField{Name: "content-length", Value: view(v), Sensitive: true})
}

// request encodes a request's header block into e.buf; upper is
// checkNames' for r.Header.
func (e *headerEncoder) request(r *l7.Request, withBody, upper bool) []byte {
	e.buf.Reset()
	e.fieldStr(":method", r.Method)
	if r.Method != l7.MethodConnect || r.Protocol != "" {
		scheme := r.Scheme
		if scheme == "" {
			scheme = "https"
		}
		e.fieldStr(":scheme", scheme)
	}
	e.field(nameAuthority, r.Authority)
	if r.Method != l7.MethodConnect || r.Protocol != "" {
		path := r.Path
		if len(path) == 0 {
			path = slash
		}
		e.field(namePath, path)
	}
	if r.Protocol != "" {
		e.fieldStr(":protocol", r.Protocol)
	}
	e.fields(&r.Header, upper)
	if withBody && r.ContentLength > 0 {
		e.contentLength(&r.Header, r.ContentLength)
	}
	return e.buf.Bytes()
}

var (
	slash         = []byte("/")
	nameAuthority = []byte(":authority")
	namePath      = []byte(":path")
)

// response encodes a response's header block into e.buf; upper is
// checkNames' for r.Header.
func (e *headerEncoder) response(r *l7.Response, upper bool) []byte {
	e.buf.Reset()
	e.status(r.Status)
	e.fields(&r.Header, upper)
	if r.ContentLength > 0 {
		e.contentLength(&r.Header, r.ContentLength)
	}
	return e.buf.Bytes()
}

func (e *headerEncoder) status(code int) {
	switch code {
	case 200:
		e.fieldStr(":status", "200")
	case 204:
		e.fieldStr(":status", "204")
	case 304:
		e.fieldStr(":status", "304")
	case 400:
		e.fieldStr(":status", "400")
	case 404:
		e.fieldStr(":status", "404")
	case 500:
		e.fieldStr(":status", "500")
	default:
		v := strconv.AppendInt(e.num[:0], int64(code), 10)
		e.enc.WriteField(hpack.HeaderField{Name: ":status", Value: e.internString(v)})
	}
}

// trailers encodes a trailer block into e.buf; upper is checkNames' for
// h.
func (e *headerEncoder) trailers(h *l7.Header, upper bool) []byte {
	e.buf.Reset()
	e.fields(h, upper)
	return e.buf.Bytes()
}

// statelessBlock encodes a response that neither reads nor changes any
// dynamic table (static entries and never-indexed literals only), so that
// the read loop can queue it without the write lock.
func statelessBlock(status int) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status), Sensitive: true})
	enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "0", Sensitive: true})
	return buf.Bytes()
}

// block431 answers a request whose header list is over our limits.
var block431 = statelessBlock(431)

// block408 answers a request whose header block did not complete within
// RequestHeadersTimeout.
var block408 = statelessBlock(408)

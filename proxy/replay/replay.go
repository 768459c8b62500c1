// Package replay puts bytes read ahead back in front of a stream: what a
// protocol sniffer or a codec read before handing the stream on is read
// again first, then the stream's own bytes.
//
// It is the one place that does so: proxy/downstream.Conn embeds a Reader
// (the sniffed prefix of an HBONE stream, the HTTP/2 preface check of an
// AUTO codec, Dubbo's magic, the bytes an HTTP/1.1 codec buffered past an
// upgrade), and any other stream whose bytes were read ahead can use it as
// it is.
package replay

import "io"

// Reader reads the bytes put back, then R. The zero value has nothing put
// back; R must be set before the first Read that reaches it.
//
// Not safe for concurrent use: a Reader belongs to the stream's one reader
// goroutine (writes to the stream go on beside it, elsewhere). It
// allocates nothing, and keeps the bytes put back without copying them.
type Reader struct {
	// R is the stream read once the bytes put back are gone.
	R io.Reader

	pending []byte // put back, not yet read again
}

// NewReader returns a Reader that reads prefix, then r. prefix is kept,
// not copied: the caller must not change it until it has been read.
func NewReader(prefix []byte, r io.Reader) *Reader {
	return &Reader{R: r, pending: prefix}
}

// Unread puts b back in front of whatever is still to be read. b is kept,
// not copied, unless bytes put back earlier are still unread (then both
// are copied into a new slice, b first).
func (r *Reader) Unread(b []byte) {
	switch {
	case len(b) == 0:
	case len(r.pending) == 0:
		r.pending = b
	default:
		r.pending = append(append(make([]byte, 0, len(b)+len(r.pending)), b...), r.pending...)
	}
}

// Buffered is how many bytes put back are still to be read.
func (r *Reader) Buffered() int { return len(r.pending) }

// Read reads the bytes put back while there are any (never mixing them
// with the stream's in one call), then from R.
func (r *Reader) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		return r.R.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	if len(r.pending) == 0 {
		r.pending = nil // drop the caller's buffer
	}
	return n, nil
}

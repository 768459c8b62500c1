package http2

import (
	"io"
	"sync"
)

// outBuf is the buffered writer in front of a connection: frames gather in
// it until the write lock's last holder flushes, so that a batch goes out
// in one write (one syscall, and full TLS records under TLS). Unlike a
// bufio.Writer it holds no memory while empty: its buffer comes from a
// pool on the first write after a flush and goes back when a flush empties
// it, so that an idle connection pins none of its writeBufferSize bytes.
// Used by the write lock's holder only.
type outBuf struct {
	dst io.Writer
	buf *[]byte // nil while empty
}

var outBufPool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}

// Write appends p, first writing out what is buffered when p does not fit;
// a p larger than the buffer goes straight to dst.
func (o *outBuf) Write(p []byte) (int, error) {
	if o.buf != nil && len(*o.buf)+len(p) > cap(*o.buf) {
		if err := o.Flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= writeBufferSize {
		return o.dst.Write(p)
	}
	if o.buf == nil {
		o.buf = outBufPool.Get().(*[]byte)
	}
	*o.buf = append(*o.buf, p...)
	return len(p), nil
}

// writeFrame appends a frame's header and payload, flushing first when
// both do not fit, so that a frame of up to one TLS record's worth is
// never split across two writes. It saves the copy a Framer makes into
// its own buffer before writing a frame.
func (o *outBuf) writeFrame(hdr, p []byte) error {
	n := len(hdr) + len(p)
	if n > writeBufferSize {
		if _, err := o.Write(hdr); err != nil {
			return err
		}
		_, err := o.Write(p)
		return err
	}
	if o.buf != nil && len(*o.buf)+n > cap(*o.buf) {
		if err := o.Flush(); err != nil {
			return err
		}
	}
	if o.buf == nil {
		o.buf = outBufPool.Get().(*[]byte)
	}
	*o.buf = append(append(*o.buf, hdr...), p...)
	return nil
}

// WriteString is Write for a string.
func (o *outBuf) WriteString(s string) (int, error) {
	if o.buf == nil || len(*o.buf)+len(s) > cap(*o.buf) || len(s) >= writeBufferSize {
		return o.Write([]byte(s))
	}
	*o.buf = append(*o.buf, s...)
	return len(s), nil
}

// Buffered is the number of bytes waiting for Flush.
func (o *outBuf) Buffered() int {
	if o.buf == nil {
		return 0
	}
	return len(*o.buf)
}

// Flush writes what is buffered and gives the buffer back to the pool.
func (o *outBuf) Flush() error {
	if o.buf == nil {
		return nil
	}
	b := o.buf
	o.buf = nil
	_, err := o.dst.Write(*b)
	*b = (*b)[:0]
	outBufPool.Put(b)
	return err
}

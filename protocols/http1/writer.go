package http1

import (
	"errors"
	"io"
	"net/http"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// minWriteRoom is the least free space a body Read is given; with less,
// the buffer is flushed first.
const minWriteRoom = 1 << 10

// chunkHeadRoom is the space kept before chunk data for its size line: 8
// hex digits (a chunk is at most one buffer) and CRLF.
const chunkHeadRoom = 10

// writer is a connection's write buffer: a head and the start of a body
// gather in buf[:n] and leave in one Write. Errors are sticky.
type writer struct {
	dst     io.Writer
	buf     []byte
	n       int
	err     error
	flushes int // counts Writes, so that a caller can tell whether a head was partly sent
}

func newWriter(dst io.Writer, size int) writer {
	return writer{dst: dst, buf: make([]byte, size)}
}

func (w *writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 {
		return nil
	}
	m, err := w.dst.Write(w.buf[:w.n])
	if err == nil && m < w.n {
		err = io.ErrShortWrite
	}
	w.flushes++
	if err != nil {
		w.err = err
		return err
	}
	w.n = 0
	return nil
}

func (w *writer) write(p []byte) {
	for len(p) > 0 {
		if w.n == len(w.buf) && w.flush() != nil {
			return
		}
		k := copy(w.buf[w.n:], p)
		w.n += k
		p = p[k:]
	}
}

func (w *writer) writeString(s string) {
	for len(s) > 0 {
		if w.n == len(w.buf) && w.flush() != nil {
			return
		}
		k := copy(w.buf[w.n:], s)
		w.n += k
		s = s[k:]
	}
}

// field writes "name: value\r\n".
func (w *writer) field(name, value []byte) {
	if n := w.n; len(name)+len(value)+4 <= len(w.buf)-n {
		n += copy(w.buf[n:], name)
		w.buf[n], w.buf[n+1] = ':', ' '
		n += 2 + copy(w.buf[n+2:], value)
		w.buf[n], w.buf[n+1] = '\r', '\n'
		w.n = n + 2
		return
	}
	w.write(name)
	w.writeString(": ")
	w.write(value)
	w.writeString("\r\n")
}

// decimalField writes "name: n\r\n" (name includes ": ").
func (w *writer) decimalField(name string, n int64) {
	var tmp [40]byte
	b := append(tmp[:0], name...)
	b = appendDecimal(b, n)
	b = append(b, '\r', '\n')
	w.write(b)
}

// fields writes the fields of h, but those the codec writes itself
// (framing, connection, host), checking each name and value so that
// nothing from the model can split or smuggle a message.
func (w *writer) fields(h *l7.Header, what string, status int) error {
	for _, f := range h.Fields() {
		if hopField(f.Name) {
			continue
		}
		if !isToken(f.Name) {
			return newError(status, what+": invalid field name "+quote(f.Name))
		}
		if !validValue(f.Value) {
			return newError(status, what+": invalid character in the value of "+string(f.Name))
		}
		w.field(f.Name, f.Value)
	}
	return nil
}

// statusLine writes "HTTP/1.1 status reason\r\n"; status is 100 to 999.
func (w *writer) statusLine(status int) {
	if status < len(statusLines) && statusLines[status] != "" {
		w.writeString(statusLines[status])
		return
	}
	b := [...]byte{'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ',
		byte('0' + status/100), byte('0' + status/10%10), byte('0' + status%10), ' ', '\r', '\n'}
	w.write(b[:])
}

// statusLines holds the status lines of the statuses net/http names.
var statusLines [600]string

func init() {
	for s := 100; s < len(statusLines); s++ {
		if text := http.StatusText(s); text != "" {
			statusLines[s] = "HTTP/1.1 " + itoa(s) + " " + text + "\r\n"
		}
	}
}

// errShortBody is a body that ended before its declared length.
var errShortBody = errors.New("body shorter than its content-length")

// readFailed wraps an error of the body being copied (the source), as
// opposed to one of the stream being written.
type readFailed struct{ err error }

func (e *readFailed) Error() string { return e.err.Error() }
func (e *readFailed) Unwrap() error { return e.err }

// room makes sure a body Read gets at least minWriteRoom bytes (or extra).
func (w *writer) room(extra int) error {
	if len(w.buf)-w.n < minWriteRoom+extra {
		return w.flush()
	}
	return nil
}

// copyLength copies exactly n bytes of src, flushing after each Read that
// returned data unless it was the last.
func (w *writer) copyLength(src io.Reader, n int64) error {
	for n > 0 {
		if err := w.room(0); err != nil {
			return err
		}
		p := w.buf[w.n:]
		if int64(len(p)) > n {
			p = p[:n]
		}
		k, err := src.Read(p)
		w.n += k
		n -= int64(k)
		if n == 0 {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				err = errShortBody
			}
			return &readFailed{err}
		}
		if k > 0 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyAll copies src to its end, as a close-delimited body.
func (w *writer) copyAll(src io.Reader) error {
	for {
		if err := w.room(0); err != nil {
			return err
		}
		k, err := src.Read(w.buf[w.n:])
		w.n += k
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &readFailed{err}
		}
		if k > 0 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
}

// copyChunked copies src as chunks, one per Read that returned data, each
// read straight into the buffer after room for its size line, which is
// then put right before the data. The last chunk is the caller's to write.
func (w *writer) copyChunked(src io.Reader) error {
	for {
		if err := w.room(chunkHeadRoom + 2); err != nil {
			return err
		}
		start := w.n + chunkHeadRoom
		k, err := src.Read(w.buf[start : len(w.buf)-2])
		if k > 0 {
			h := putHex(w.buf[w.n:], k)
			w.buf[w.n+h], w.buf[w.n+h+1] = '\r', '\n'
			n := w.n + h + 2
			n += copy(w.buf[n:], w.buf[start:start+k])
			w.buf[n], w.buf[n+1] = '\r', '\n'
			w.n = n + 2
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &readFailed{err}
		}
		if k > 0 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
}

// lastChunk writes the last chunk and the trailer section.
func (w *writer) lastChunk(trailer *l7.Header, what string, status int) error {
	w.writeString("0\r\n")
	for _, f := range trailer.Fields() {
		if droppedTrailer(f.Name) {
			continue
		}
		if !isToken(f.Name) {
			return newError(status, what+": invalid field name "+quote(f.Name))
		}
		if !validValue(f.Value) {
			return newError(status, what+": invalid character in the value of "+string(f.Name))
		}
		w.field(f.Name, f.Value)
	}
	w.writeString("\r\n")
	return nil
}

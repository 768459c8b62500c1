package http1

import (
	"bytes"
	"io"
	"time"
)

// reader is a connection's read buffer. Unread bytes are buf[r:w]. The
// head of the current message, buf[:pinned], is referenced by the model
// and never overwritten while its stream lasts: room is made by moving
// unread bytes down to pinned or, when that is not enough, into a new
// array (the old one stays alive with the slices that point into it, and
// the new one is kept for the connection).
type reader struct {
	src     io.Reader
	buf     []byte
	r, w    int
	pinned  int
	maxSize int
	// lines holds, for the head last read, the offset of each line's '\n'
	// from the head's start.
	lines []int32
	err   error // sticky error of src

	// dl, when non-nil with a positive timeout, bounds how long readHead
	// blocks; armed says a deadline is set and must be cleared.
	dl      readDeadliner
	timeout time.Duration
	armed   bool
	// headStart, when set, is called once per request head, when its
	// first bytes are in and readHead must wait for more;
	// headStarted says it was.
	headStart   func()
	headStarted bool
}

// readDeadliner is the optional interface of a stream with read deadlines
// (a net.Conn has it; an HBONE stream may not).
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

func newReader(src io.Reader, size int, limits Limits) reader {
	return reader{
		src:     src,
		buf:     make([]byte, size),
		maxSize: max(size, limits.MaxHeaderBytes, maxChunkLine),
		lines:   make([]int32, 0, 32),
	}
}

// buffered returns the unread bytes.
func (b *reader) buffered() []byte { return b.buf[b.r:b.w] }

// release unpins the previous message's head: a new message starts. When
// the unread bytes sit in the upper half of the buffer they are moved to
// its start, so that the next head does not end so close to the end that
// its body would need a new array (a memmove of at most half a buffer,
// and none when nothing is buffered, as is usual between requests).
func (b *reader) release() {
	b.pinned = 0
	switch {
	case b.r == b.w:
		b.r, b.w = 0, 0
	case b.r > len(b.buf)/2:
		n := copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, n
	}
}

// makeRoom ensures at least need (and preferably minRoom) bytes of space
// from r to the end of the buffer.
func (b *reader) makeRoom(need int) {
	room := min(max(need, minRoom), b.maxSize)
	if len(b.buf)-b.r >= room {
		return
	}
	n := b.w - b.r
	if len(b.buf)-b.pinned >= room {
		copy(b.buf[b.pinned:], b.buf[b.r:b.w])
		b.r, b.w = b.pinned, b.pinned+n
		return
	}
	size := len(b.buf)
	if size < room {
		size = min(max(2*size, room), b.maxSize)
	}
	nb := make([]byte, size)
	copy(nb, b.buf[b.r:b.w])
	b.buf, b.r, b.w, b.pinned = nb, 0, n, 0
}

// fill reads from src once, after making room for need bytes from r; it
// returns nil when some bytes arrived.
func (b *reader) fill(need int) error {
	if b.r == b.w {
		b.r, b.w = b.pinned, b.pinned
	}
	if b.err != nil {
		return b.err
	}
	b.makeRoom(need)
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		b.w += n
		if err != nil {
			b.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return errNoProgress
}

// readDirect reads from src into p, bypassing the buffer; only for when
// nothing is buffered.
func (b *reader) readDirect(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for range 100 {
		n, err := b.src.Read(p)
		if err != nil {
			b.err = err
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, errNoProgress
}

// headKind names what readHead reads, for limits and error reasons.
type headKind uint8

const (
	requestHead headKind = iota
	responseHead
	trailerSection
)

func (k headKind) String() string {
	switch k {
	case requestHead:
		return "request head"
	case responseHead:
		return "response head"
	}
	return "trailer section"
}

// readHead buffers a whole head: lines ending in CRLF, then an empty line,
// at most limit bytes and maxLines non-empty lines. It consumes the head,
// pins it, records its line ends in b.lines and returns it. A request may
// be preceded by a few empty lines, which are skipped. io.EOF means that
// the stream ended cleanly before any byte of a head; errWouldBlock that
// block is false and more input is needed.
func (b *reader) readHead(kind headKind, limit, maxLines int, block bool) ([]byte, error) {
	b.lines = b.lines[:0]
	scan, lineStart, skipped := 0, 0, 0
	for {
		i := bytes.IndexByte(b.buf[b.r+scan:b.w], '\n')
		if i < 0 {
			scan = b.w - b.r
			if scan >= limit {
				return nil, b.tooLarge(kind)
			}
			if !block {
				return nil, errWouldBlock
			}
			if kind == requestHead && b.w > b.r && !b.headStarted && b.headStart != nil {
				b.headStarted = true
				b.headStart()
			}
			b.arm()
			if err := b.fill(scan + 1); err != nil {
				if err == io.EOF {
					if b.w == b.r && kind != trailerSection {
						return nil, io.EOF
					}
					return nil, io.ErrUnexpectedEOF
				}
				return nil, err
			}
			continue
		}
		nl := scan + i
		if nl >= limit {
			return nil, b.tooLarge(kind)
		}
		if nl == lineStart || b.buf[b.r+nl-1] != '\r' {
			return nil, badRequest(kind.String() + ": line ends in a bare LF")
		}
		if nl-1 == lineStart { // an empty line
			if kind == requestHead && len(b.lines) == 0 {
				if skipped == maxLeadingCRLF {
					return nil, badRequest("request head: too many empty lines before the request line")
				}
				skipped++
				b.r += nl + 1
				scan, lineStart = 0, 0
				continue
			}
			b.lines = append(b.lines, int32(nl))
			head := b.buf[b.r : b.r+nl+1]
			b.r += nl + 1
			b.pinned = b.r
			return head, nil
		}
		if len(b.lines) >= maxLines {
			return nil, newError(431, kind.String()+": more fields than MaxHeaders")
		}
		b.lines = append(b.lines, int32(nl))
		lineStart, scan = nl+1, nl+1
	}
}

func (b *reader) tooLarge(kind headKind) error {
	if kind == requestHead && len(b.lines) == 0 {
		return newError(414, "request line longer than MaxHeaderBytes")
	}
	return newError(431, kind.String()+": larger than MaxHeaderBytes")
}

// readLine returns the next CRLF-terminated line (without its CRLF) of at
// most limit bytes, consuming it.
func (b *reader) readLine(what string, limit int, block bool) ([]byte, error) {
	for {
		if i := bytes.IndexByte(b.buf[b.r:b.w], '\n'); i >= 0 {
			if i+1 > limit {
				return nil, badRequest(what + ": longer than " + itoa(limit) + " bytes")
			}
			if i == 0 || b.buf[b.r+i-1] != '\r' {
				return nil, badRequest(what + ": line ends in a bare LF")
			}
			line := b.buf[b.r : b.r+i-1]
			b.r += i + 1
			return line, nil
		}
		if b.w-b.r >= limit {
			return nil, badRequest(what + ": longer than " + itoa(limit) + " bytes")
		}
		if !block {
			return nil, errWouldBlock
		}
		if err := b.fill(b.w - b.r + 1); err != nil {
			return nil, eofIsUnexpected(err)
		}
	}
}

// need ensures n bytes are buffered.
func (b *reader) need(n int, block bool) error {
	for b.w-b.r < n {
		if !block {
			return errWouldBlock
		}
		if err := b.fill(n); err != nil {
			return eofIsUnexpected(err)
		}
	}
	return nil
}

// arm sets the read deadline before readHead first blocks.
func (b *reader) arm() {
	if b.dl == nil || b.timeout <= 0 || b.armed {
		return
	}
	b.armed = true
	_ = b.dl.SetReadDeadline(time.Now().Add(b.timeout))
}

// disarm clears a deadline arm set.
func (b *reader) disarm() {
	if b.armed {
		b.armed = false
		_ = b.dl.SetReadDeadline(time.Time{})
	}
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

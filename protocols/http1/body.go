package http1

import (
	"errors"
	"io"
	"os"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

type bodyMode uint8

const (
	noBody bodyMode = iota
	lengthBody
	chunkedBody
	closeBody // until the stream ends (responses only)
)

type chunkState uint8

const (
	chunkSize    chunkState = iota // expecting a chunk-size line
	chunkData                      // inside chunk data (remaining > 0)
	chunkDataEnd                   // expecting the CRLF after chunk data
	chunkTrailer                   // expecting the trailer section
)

// directRead is the smallest Read that bypasses the buffer when nothing is
// buffered: large reads go straight from the stream to the caller.
const directRead = 2 << 10

// body streams one message body out of a connection's reader. It is the
// io.Reader a ServerConn puts in l7.Request.Body and a ClientConn in
// l7.Response.Body, reused for every message. It may be read by another
// goroutine than the one driving the connection; done and the
// connection's broken flag are what the two share.
type body struct {
	in        *reader
	mode      bodyMode
	remaining int64 // of the body (lengthBody) or of the current chunk
	state     chunkState
	trailer   *l7.Header
	limits    Limits
	err       error // sticky: returned by every Read after the end or a failure
	done      atomic.Bool
	broken    *atomic.Bool // the connection's
	framing   *atomic.Bool // the server connection's: set on a body framing error
	// timedOut is the server connection's: set when a read of the
	// request body failed on the stream's read deadline
	// (os.ErrDeadlineExceeded), which leaves the stream writable.
	timedOut *atomic.Bool
	what     string // "request body" or "response body", for errors
	upstream bool   // errors are the upstream's (502)

	// cont, when set, is asked to send 100 Continue before the first
	// read from the stream.
	cont *ServerConn
}

func (b *body) reset(mode bodyMode, length int64, trailer *l7.Header) {
	b.mode, b.remaining, b.state, b.trailer, b.err = mode, length, chunkSize, trailer, nil
	b.cont = nil
	b.done.Store(mode == noBody)
	if mode == noBody {
		b.err = io.EOF
	}
}

// Read reads body bytes, io.EOF at the end (after the trailer section, if
// any, is in the message's Trailer).
func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.cont != nil {
		b.cont.sendContinue()
		b.cont = nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case lengthBody:
		n, err = b.readLength(p)
	case chunkedBody:
		n, err = b.readChunked(p)
	case closeBody:
		n, err = b.readUntilClose(p)
	}
	if err != nil {
		b.finish(err)
		err = b.err
	}
	return n, err
}

// finish records the end of the body, or its failure, which breaks the
// connection.
func (b *body) finish(err error) {
	if err == io.EOF {
		b.err = io.EOF
		b.done.Store(true)
		return
	}
	if b.upstream {
		err = upstreamError(err)
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		if b.timedOut != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			b.timedOut.Store(true)
		}
		err = &bodyError{what: b.what, err: err}
	} else if b.framing != nil {
		b.framing.Store(true)
	}
	b.err = err
	b.broken.Store(true)
}

// bodyError is a stream failure in the middle of a body.
type bodyError struct {
	what string
	err  error
}

func (e *bodyError) Error() string { return "http1: reading " + e.what + ": " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// copyOut serves p from the buffer, or straight from the stream when the
// buffer is empty and p is large, never past max bytes.
func (b *body) copyOut(p []byte, max int64) (int, error) {
	if int64(len(p)) > max {
		p = p[:max]
	}
	in := b.in
	if in.r == in.w {
		if len(p) >= directRead {
			n, err := in.readDirect(p)
			if n > 0 {
				return n, nil
			}
			return 0, eofIsUnexpected(err)
		}
		if err := in.fill(1); err != nil {
			return 0, eofIsUnexpected(err)
		}
	}
	n := copy(p, in.buf[in.r:in.w])
	in.r += n
	return n, nil
}

func (b *body) readLength(p []byte) (int, error) {
	n, err := b.copyOut(p, b.remaining)
	b.remaining -= int64(n)
	if err != nil {
		return n, err
	}
	if b.remaining == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (b *body) readUntilClose(p []byte) (int, error) {
	in := b.in
	if in.r == in.w {
		if len(p) >= directRead {
			return in.readDirect(p)
		}
		if err := in.fill(1); err != nil {
			return 0, err
		}
	}
	n := copy(p, in.buf[in.r:in.w])
	in.r += n
	return n, nil
}

func (b *body) readChunked(p []byte) (int, error) {
	for b.state != chunkData {
		if err := b.step(true); err != nil {
			return 0, err
		}
	}
	n, err := b.copyOut(p, b.remaining)
	b.remaining -= int64(n)
	if err != nil {
		return n, err
	}
	if b.remaining == 0 {
		b.state = chunkDataEnd
		// Move on with what is already buffered, so that a body whose
		// end has arrived reports io.EOF with its last bytes.
		for {
			err := b.step(false)
			if err == errWouldBlock {
				break
			}
			if err == io.EOF {
				return n, io.EOF
			}
			if err != nil {
				b.finish(err) // reported by the next Read
				return n, nil
			}
			if b.state == chunkData {
				break
			}
		}
	}
	return n, nil
}

// step advances the chunked framing by one element; io.EOF after the
// trailer section. Unless block, it returns errWouldBlock rather than
// read from the stream.
func (b *body) step(block bool) error {
	in := b.in
	switch b.state {
	case chunkDataEnd:
		if err := in.need(2, block); err != nil {
			return err
		}
		if in.buf[in.r] != '\r' || in.buf[in.r+1] != '\n' {
			return badRequest(b.what + ": chunk data not followed by CRLF")
		}
		in.r += 2
		b.state = chunkSize
	case chunkSize:
		line, err := in.readLine(b.what+": chunk-size line", maxChunkLine, block)
		if err != nil {
			return err
		}
		size, err := parseChunkSize(b.what, line)
		if err != nil {
			return err
		}
		if size == 0 {
			b.state = chunkTrailer
			return nil
		}
		b.remaining, b.state = size, chunkData
	case chunkTrailer:
		limits := b.limits
		r := in.r
		head, err := in.readHead(trailerSection, limits.MaxHeaderBytes, limits.MaxHeaders, block)
		if err != nil {
			in.r = r
			return eofIsUnexpected(err)
		}
		if err := parseFields(trailerSection, head, in.lines, 0, b.trailer, nil); err != nil {
			return err
		}
		return io.EOF
	}
	return nil
}

// parseChunkSize parses chunk-size [chunk-ext] (RFC 9112 7.1). The size is
// 1*HEXDIG; extensions, bounded by the line limit, are checked for
// controls and otherwise ignored, as RFC 9112 allows.
func parseChunkSize(what string, line []byte) (int64, error) {
	var size int64
	i := 0
	for ; i < len(line) && class[line[i]]&classHex != 0; i++ {
		if size > (1<<63-1)>>4 {
			return 0, badRequest(what + ": chunk size overflows")
		}
		size = size<<4 | int64(unhex(line[i]))
	}
	if i == 0 {
		return 0, badRequest(what + ": invalid chunk size " + quote(line))
	}
	ext := line[i:]
	if len(ext) == 0 {
		return size, nil
	}
	if t := trimOWS(ext); len(t) == 0 || t[0] != ';' {
		return 0, badRequest(what + ": invalid chunk size " + quote(line))
	}
	if !validValue(ext) {
		return 0, badRequest(what + ": invalid character in a chunk extension")
	}
	return size, nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

package dubbo

import (
	"errors"
	"io"
)

// Frame is one frame: its parsed header and its bytes. A Frame returned by
// Reader.Next belongs to the caller until it calls Release: it may keep it
// while it waits for an upstream, hand it to another goroutine, change it
// in place (SetID), and must not touch it after Release.
type Frame struct {
	// Header is the parsed header of Raw.
	Header Header
	// Raw is the whole frame: the header's 16 bytes, then the body.
	Raw []byte

	buf  []byte // storage of Raw, from the pools
	tier int8   // pool tier of buf, -1 if unpooled
}

// Body returns the frame's body.
func (f *Frame) Body() []byte { return f.Raw[HeaderLen:] }

// Release gives the frame's storage back to the pool. The frame, and every
// slice of it (Raw, Body, what decoders read from the body), must not be
// used afterwards.
func (f *Frame) Release() { putFrame(f) }

// Reader reads frames from a byte stream (a connection or a tunnel
// stream). It reads ahead into its own buffer, so that many small frames
// cost one read; each frame is copied out into a pooled buffer that the
// caller owns (large frames are read straight into theirs). It applies no
// timeout: the connection manager sets deadlines on the stream. One
// goroutine reads from a Reader; it starts none.
type Reader struct {
	src     io.Reader
	buf     []byte
	pooled  *[]byte // buf's pool entry, nil if not pooled
	r, w    int     // unread bytes are buf[r:w]
	maxBody int
	offset  int64 // connection offset of buf[r]
	discard int   // body bytes of a refused frame still to skip
	err     error // sticky: a read error, or a frame with no end
}

// NewReader returns a Reader of src.
func NewReader(src io.Reader, cfg ReaderConfig) *Reader {
	cfg = cfg.withDefaults()
	r := &Reader{src: src, maxBody: cfg.MaxBodyBytes}
	if cfg.ReadBufferSize == DefaultReadBufferSize {
		r.pooled = readBufPool.Get().(*[]byte)
		r.buf = *r.pooled
	} else {
		r.buf = make([]byte, cfg.ReadBufferSize)
	}
	return r
}

// Next reads the next frame, which the caller must Release. At a clean end
// of stream between frames it returns io.EOF. A frame it cannot read is a
// *FrameError: ErrBadMagic (close the connection), io.ErrUnexpectedEOF (the
// stream ended inside a frame), or ErrTooLarge, after which Next may be
// called again: it skips the refused body first. Any other error is the
// stream's. After an error other than ErrTooLarge, every call returns it
// again.
func (r *Reader) Next() (*Frame, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.discard > 0 {
		if err := r.skipBody(); err != nil {
			return nil, r.fail(err)
		}
	}
	if err := r.fill(2); err != nil {
		if err == io.EOF && r.w == r.r {
			return nil, r.fail(io.EOF)
		}
		return nil, r.fail(r.truncated(err))
	}
	if !IsDubbo(r.buf[r.r:r.w]) { // refuse early: no need for all 16 bytes
		return nil, r.fail(&FrameError{Err: ErrBadMagic, Offset: r.offset,
			Detail: "bytes 0x" + hex2(r.buf[r.r], r.buf[r.r+1])})
	}
	if err := r.fill(HeaderLen); err != nil {
		return nil, r.fail(r.truncated(err))
	}
	h, _ := ParseHeader(r.buf[r.r:r.w])
	if h.BodyLen < 0 || h.BodyLen > r.maxBody {
		e := &FrameError{Err: ErrTooLarge, Header: h, HasHeader: true, Offset: r.offset,
			Discard: h.BodyLen, Detail: "limit " + itoa(r.maxBody) + " bytes"}
		r.consume(HeaderLen)
		r.discard = h.BodyLen
		return nil, e
	}
	n := HeaderLen + h.BodyLen
	if n <= len(r.buf) {
		if err := r.fill(n); err != nil {
			return nil, r.fail(r.truncatedFrame(h, err))
		}
		f := getFrame(n)
		copy(f.Raw, r.buf[r.r:r.r+n])
		f.Header = h
		r.consume(n)
		return f, nil
	}
	f := getFrame(n)
	have := copy(f.Raw, r.buf[r.r:r.w])
	start := r.offset
	r.consume(have)
	m, err := io.ReadFull(r.src, f.Raw[have:])
	r.offset += int64(m)
	if err != nil {
		putFrame(f)
		e := r.truncatedFrame(h, err)
		if fe, ok := e.(*FrameError); ok {
			fe.Offset = start
		}
		return nil, r.fail(e)
	}
	f.Header = h
	return f, nil
}

// Buffered returns how many bytes have been read from the stream and not
// yet returned in a frame.
func (r *Reader) Buffered() int { return r.w - r.r }

// Close returns the read buffer to its pool. It does not close the
// stream; the Reader must not be used afterwards.
func (r *Reader) Close() {
	if r.pooled != nil {
		readBufPool.Put(r.pooled)
		r.pooled = nil
	}
	r.buf, r.r, r.w = nil, 0, 0
	r.err = errClosed
}

var errClosed = errors.New("dubbo: Reader closed")

// fill reads until n bytes are buffered, n <= len(r.buf). It returns
// io.EOF if the stream ends first.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	if r.r+n > len(r.buf) {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	for zeros := 0; r.w-r.r < n; {
		m, err := r.src.Read(r.buf[r.w:])
		r.w += m
		if r.w-r.r >= n {
			return nil
		}
		if err != nil {
			return err
		}
		if m == 0 {
			if zeros++; zeros >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

func (r *Reader) consume(n int) {
	r.r += n
	r.offset += int64(n)
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
}

// skipBody drops the body of a refused frame.
func (r *Reader) skipBody() error {
	for r.discard > 0 {
		if r.w == r.r {
			r.r, r.w = 0, 0
			m, err := r.src.Read(r.buf)
			r.w = m
			if m == 0 && err != nil {
				if err == io.EOF {
					return &FrameError{Err: io.ErrUnexpectedEOF, Offset: r.offset,
						Detail: "inside a refused body"}
				}
				return err
			}
		}
		n := min(r.discard, r.w-r.r)
		r.consume(n)
		r.discard -= n
	}
	return nil
}

// truncated is the error for a stream that ends before a header does.
func (r *Reader) truncated(err error) error {
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	return &FrameError{Err: io.ErrUnexpectedEOF, Offset: r.offset, Detail: "inside the header"}
}

// truncatedFrame is the error for a stream that ends inside h's body.
func (r *Reader) truncatedFrame(h Header, err error) error {
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	return &FrameError{Err: io.ErrUnexpectedEOF, Header: h, HasHeader: true, Offset: r.offset,
		Detail: "inside the body"}
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

package http2

import (
	"errors"
	"io"
	"sync"

	xhttp2 "golang.org/x/net/http2"
)

// writer is the one way out of a connection. Every frame goes through one
// outBuf (up to writeBufferSize, pooled while empty), owned by whichever goroutine holds the write lock:
//
//   - Stream goroutines take the lock themselves (no hand-off to a writer
//     goroutine), write their frames and give the lock to the next waiter
//     in FIFO order, so that streams sending DATA take turns one frame at
//     a time (round robin). The last holder, finding nobody waiting,
//     flushes: one syscall (one TLS record) per batch.
//   - Goroutines that must not block on the connection (the read loop)
//     queue encoded frames in ctrl instead; the holder writes them before
//     anything else. If nobody holds the lock, the queuer becomes the
//     holder and either releases inline (stream goroutines) or starts a
//     short-lived flusher goroutine (the read loop).
//
// The queue is bounded (maxFrames, and maxCtrl for PING/SETTINGS acks and
// RST_STREAM): a peer that sends faster than it reads our answers gets the
// connection closed instead of growing our memory. Stream frames never
// queue: their goroutine blocks until the peer reads.
type writer struct {
	// Holder only: used by the goroutine that holds the write lock.
	bw    *outBuf
	fr    *xhttp2.Framer // writes into bw
	enc   headerEncoder
	spare []byte
	hdr   [frameHeaderLen]byte // writeData's frame header

	mu      sync.Mutex
	held    bool
	waiters []chan struct{}
	ctrl    []byte         // queued, encoded frames
	cfr     *xhttp2.Framer // encodes into ctrl
	nctrl   int            // counted control frames in ctrl
	nqueued int            // all frames in ctrl
	// tableSize is a peer's SETTINGS_HEADER_TABLE_SIZE not yet applied
	// to the encoder; tableSizeSet says it is pending.
	tableSize    uint32
	tableSizeSet bool
	err          error // first write error, sticky

	maxCtrl, maxFrames int
	// onError is called once, without locks held, on the first write
	// error; it closes the transport.
	onError func(error)
}

// errFlood is returned when the output queue is over its bound.
var errFlood = errors.New("http2: too many frames queued for a peer that does not read")

// errCtrlFlood is returned when the control frames queued (PING and
// SETTINGS answers, RST_STREAM) are over their bound.
var errCtrlFlood = errors.New("http2: too many control frames queued (PING or SETTINGS flood)")

type ctrlSink struct{ w *writer }

func (s ctrlSink) Write(p []byte) (int, error) {
	s.w.ctrl = append(s.w.ctrl, p...)
	return len(p), nil
}

func (w *writer) init(dst io.Writer, cfg *Config, onError func(error)) {
	w.bw = &outBuf{dst: dst}
	w.fr = xhttp2.NewFramer(w.bw, nil)
	w.cfr = xhttp2.NewFramer(ctrlSink{w}, nil)
	w.enc.init()
	w.maxCtrl = cfg.MaxOutboundControlFrames
	w.maxFrames = cfg.MaxOutboundFrames
	w.onError = onError
}

var waitChanPool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// lock takes the write lock, waiting in FIFO order behind other holders,
// and writes queued control frames. It returns the connection's write
// error, if any; the caller must call unlock either way.
func (w *writer) lock() error {
	w.mu.Lock()
	if !w.held {
		w.held = true
		w.mu.Unlock()
	} else {
		ch := waitChanPool.Get().(chan struct{})
		w.waiters = append(w.waiters, ch)
		w.mu.Unlock()
		<-ch
		waitChanPool.Put(ch)
	}
	return w.drain()
}

// drain writes queued control frames and applies a pending table size;
// holder only.
func (w *writer) drain() error {
	w.mu.Lock()
	if w.tableSizeSet {
		w.tableSizeSet = false
		w.enc.setMaxTableSize(w.tableSize)
	}
	if len(w.ctrl) == 0 {
		err := w.err
		w.mu.Unlock()
		return err
	}
	b := w.ctrl
	w.ctrl = w.spare[:0]
	w.nctrl, w.nqueued = 0, 0
	err := w.err
	w.mu.Unlock()
	if err == nil {
		if _, err = w.bw.Write(b); err != nil {
			w.fail(err)
		}
	}
	w.mu.Lock()
	w.spare = b[:0]
	w.mu.Unlock()
	return err
}

// unlock writes what was queued meanwhile, then hands the lock to the
// next waiter or, if there is none, flushes and releases it.
func (w *writer) unlock() {
	for {
		w.mu.Lock()
		if len(w.ctrl) > 0 {
			w.mu.Unlock()
			w.drain()
			continue
		}
		if len(w.waiters) > 0 {
			ch := w.waiters[0]
			n := copy(w.waiters, w.waiters[1:])
			w.waiters[n] = nil
			w.waiters = w.waiters[:n]
			w.mu.Unlock()
			ch <- struct{}{}
			return
		}
		if w.err == nil && w.bw.Buffered() > 0 {
			w.mu.Unlock()
			if err := w.bw.Flush(); err != nil {
				w.fail(err)
			}
			continue
		}
		w.held = false
		w.mu.Unlock()
		return
	}
}

// writeData writes a DATA frame of stream id (END_STREAM when end) with
// payload p, which the caller has reserved against the windows and the
// peer's frame size; holder only. It is the Framer's WriteData without the
// copy of p into the Framer's buffer: the header goes into the outBuf and
// p after it.
func (w *writer) writeData(id uint32, end bool, p []byte) error {
	if id == 0 || id >= 1<<31 {
		return errInvalidStreamID
	}
	var flags byte
	if end {
		flags = byte(xhttp2.FlagDataEndStream)
	}
	n := len(p)
	w.hdr = [frameHeaderLen]byte{byte(n >> 16), byte(n >> 8), byte(n), byte(xhttp2.FrameData), flags,
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	return w.bw.writeFrame(w.hdr[:], p)
}

// errInvalidStreamID is writeData's answer to a stream ID that is 0 or
// has the reserved bit set (the Framer's check).
var errInvalidStreamID = errors.New("http2: invalid stream ID")

// contended reports whether another goroutine waits for the lock or
// frames are queued for the holder; holder only.
func (w *writer) contended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiters) > 0 || len(w.ctrl) > 0
}

// fail records the first write error and reports it.
func (w *writer) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
	}
	w.mu.Unlock()
	if first && w.onError != nil {
		w.onError(err)
	}
}

// writeErr returns the sticky write error.
func (w *writer) writeErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// frameClass says how a queued frame counts against the bounds.
type frameClass uint8

const (
	classOther   frameClass = iota // counts against maxFrames
	classControl                   // PING/SETTINGS ack, RST_STREAM: also maxCtrl
	classFinal                     // GOAWAY: never refused
)

// queue encodes frames with enc into the control queue. It reports
// whether the caller became the holder and must release the lock: inline
// with unlock (a goroutine that may block) or with a flusher (the read
// loop). n is the number of frames enc writes.
func (w *writer) queue(class frameClass, n int, enc func(fr *xhttp2.Framer)) (mustRelease bool, err error) {
	w.mu.Lock()
	if w.err != nil {
		err = w.err
		w.mu.Unlock()
		return false, err
	}
	if class != classFinal {
		if w.nqueued+len(w.waiters)+n > w.maxFrames {
			w.mu.Unlock()
			return false, errFlood
		}
		if class == classControl && w.nctrl+n > w.maxCtrl {
			w.mu.Unlock()
			return false, errCtrlFlood
		}
	}
	enc(w.cfr)
	w.nqueued += n
	if class == classControl {
		w.nctrl += n
	}
	if w.held {
		w.mu.Unlock()
		return false, nil
	}
	w.held = true
	w.mu.Unlock()
	return true, nil
}

// setTableSize records the peer's SETTINGS_HEADER_TABLE_SIZE for the next
// holder to apply to the encoder.
func (w *writer) setTableSize(v uint32) {
	w.mu.Lock()
	w.tableSize, w.tableSizeSet = v, true
	w.mu.Unlock()
}

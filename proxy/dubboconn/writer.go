package dubboconn

import (
	"io"
	"sync"
)

// maxQueued bounds the bytes a frameWriter holds for writing: past it,
// writers wait for the one writing to drain them (back-pressure from a
// peer that reads slowly, rather than a buffer that grows).
const maxQueued = 1 << 20

// frameWriter writes whole frames to one connection from many goroutines
// without a goroutine of its own: the first writer to come writes its
// frame straight from its buffer, and while it writes, others queue theirs
// (copied), which it then writes too, in as few writes as there are
// turns. Frames are never interleaved. Once a write fails, every write
// returns that error. Safe for concurrent use.
type frameWriter struct {
	w io.Writer

	mu      sync.Mutex
	cond    sync.Cond // signalled when the queue drains or an error is set
	queue   []byte    // frames waiting for the writing goroutine
	spare   []byte    // the other buffer, swapped with queue
	writing bool      // a goroutine is writing
	err     error
}

func newFrameWriter(w io.Writer) *frameWriter {
	fw := &frameWriter{w: w}
	fw.cond.L = &fw.mu
	return fw
}

// write writes frame, or queues a copy of it for the goroutine writing
// now. When it returns, frame may be reused. The error is the
// connection's, from this write or an earlier one; a queued frame whose
// write fails later is lost with the connection.
func (fw *frameWriter) write(frame []byte) error {
	fw.mu.Lock()
	for fw.err == nil && fw.writing && len(fw.queue)+len(frame) > maxQueued && len(fw.queue) > 0 {
		fw.cond.Wait()
	}
	if fw.err != nil {
		err := fw.err
		fw.mu.Unlock()
		return err
	}
	if fw.writing {
		fw.queue = append(fw.queue, frame...)
		fw.mu.Unlock()
		return nil
	}
	fw.writing = true
	fw.mu.Unlock()

	_, err := fw.w.Write(frame)
	for {
		fw.mu.Lock()
		if err != nil || len(fw.queue) == 0 {
			if err != nil {
				fw.err = err
			}
			fw.writing = false
			fw.cond.Broadcast()
			fw.mu.Unlock()
			return err
		}
		out := fw.queue
		fw.queue, fw.spare = fw.spare[:0], nil
		fw.cond.Broadcast()
		fw.mu.Unlock()
		_, err = fw.w.Write(out)
		fw.mu.Lock()
		if fw.spare == nil && cap(out) <= 4*maxQueued {
			fw.spare = out[:0]
		}
		fw.mu.Unlock()
	}
}

// fail makes every later write return err (the connection is gone) and
// wakes the writers waiting for room.
func (fw *frameWriter) fail(err error) {
	fw.mu.Lock()
	if fw.err == nil {
		fw.err = err
	}
	fw.cond.Broadcast()
	fw.mu.Unlock()
}

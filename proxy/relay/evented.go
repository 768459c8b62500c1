package relay

import (
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/http2"
)

// Evented is a Conn whose input can be awaited without a goroutine: an
// HTTP/2 stream, whose connection's read loop announces each arrival.
type Evented interface {
	Conn
	// TryRead is Read without waiting: (0, nil) when nothing has arrived.
	TryRead(p []byte) (int, error)
	// SetReadNotify installs fn, called each time input arrives or the
	// stream ends or fails, and at once if input is already waiting. fn
	// must not block. nil removes it.
	SetReadNotify(fn func())
}

// ChunkReader is an Evented whose input can be taken without a copy, as
// the chunks it arrived in: the relay writes each to the other side and
// releases it.
type ChunkReader interface {
	// TryReadChunk returns the next chunk, which the caller releases; an
	// empty one with a nil error when nothing has arrived.
	TryReadChunk() (http2.Chunk, error)
}

// VecWriter is a Conn that can write several buffers at once: an HTTP/2
// stream sends the frames of all of them in one write to its connection
// (one TLS write, one system call) where a Write each would flush each.
type VecWriter interface {
	// WriteVec writes bufs in order and returns the bytes written.
	WriteVec(bufs [][]byte) (int, error)
}

// maxVecChunks is the most chunks a direction hands to a VecWriter at
// once: 4 chunks of at most 16 KiB, one HTTP/2 write buffer.
const maxVecChunks = 4

// vecBatch is the chunks taken for one WriteVec; pooled, so that an idle
// tunnel holds none.
type vecBatch struct {
	chunks [maxVecChunks]http2.Chunk
	bufs   [maxVecChunks][]byte
}

var vecPool = sync.Pool{New: func() any { return new(vecBatch) }}

// Start relays like Run but returns at once: done is called with the
// result, on a goroutine the relay owns, once both directions have ended
// and both sides are closed (or aborted). counters may be nil.
//
// When both sides are Evented, a direction has a goroutine only while
// bytes move: an arrival starts one, and it ends when its input runs dry,
// so an idle tunnel costs no goroutine and no buffer. Otherwise Start runs
// Run on a goroutine it owns.
func Start(down, up Conn, opts Options, counters *Counters, done func(Result)) {
	de, ok1 := down.(Evented)
	ue, ok2 := up.(Evented)
	if !ok1 || !ok2 {
		go func() { done(Run(down, up, opts, counters)) }()
		return
	}
	r := newRun(down, up, opts, counters)
	e := &evented{run: r, done: done}
	e.pending.Store(2)
	e.toUp = pump{e: e, src: de, dst: up, n: &r.counters.DownstreamToUpstream}
	e.toDown = pump{e: e, src: ue, dst: down, n: &r.counters.UpstreamToDownstream}
	de.SetReadNotify(e.toUp.notify)
	ue.SetReadNotify(e.toDown.notify)
}

type evented struct {
	*run
	toUp, toDown pump
	pending      atomic.Int32 // directions not yet ended
	done         func(Result)
}

// pump is one direction of an evented relay.
type pump struct {
	e     *evented
	src   Evented
	dst   Conn
	n     *atomic.Int64
	state atomic.Int32 // pumpIdle, pumpRunning, pumpAgain
}

const (
	pumpIdle    = iota // no goroutine: waiting for a notification
	pumpRunning        // a goroutine is draining src (for good once src ended)
	pumpAgain          // running, and notified since it last found src dry
)

// notify is src's callback: it starts a goroutine to drain src unless one
// is running, in which case that one is told to look again.
func (p *pump) notify() {
	for {
		switch p.state.Load() {
		case pumpIdle:
			if p.state.CompareAndSwap(pumpIdle, pumpRunning) {
				go p.run()
				return
			}
		case pumpRunning:
			if p.state.CompareAndSwap(pumpRunning, pumpAgain) {
				return
			}
		default:
			return
		}
	}
}

// run drains src until it is dry (and no notification came meanwhile) or
// ended. An ended direction leaves the state running, so that later
// notifications start nothing.
func (p *pump) run() {
	for {
		if p.drain() {
			p.e.directionEnded()
			return
		}
		if p.state.CompareAndSwap(pumpRunning, pumpIdle) {
			return
		}
		p.state.Store(pumpRunning)
	}
}

// drain copies what src holds to dst; it reports whether the direction
// has ended. A ChunkReader's chunks are written as they are; other
// sources are read into a pooled buffer.
func (p *pump) drain() (ended bool) {
	if cr, ok := p.src.(ChunkReader); ok {
		if vw, ok := p.dst.(VecWriter); ok {
			return p.drainVec(cr, vw)
		}
		for {
			ch, rerr := cr.TryReadChunk()
			if len(ch.Bytes()) == 0 && rerr == nil {
				return false
			}
			ended := p.e.move(p.dst, ch.Bytes(), rerr, p.n)
			ch.Release()
			if ended {
				return true
			}
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		nr, rerr := p.src.TryRead(*bp)
		if nr == 0 && rerr == nil {
			return false
		}
		if p.e.move(p.dst, (*bp)[:nr], rerr, p.n) {
			return true
		}
	}
}

// drainVec is drain for chunks written to a VecWriter: up to
// maxVecChunks of what has arrived go out in one WriteVec.
func (p *pump) drainVec(cr ChunkReader, vw VecWriter) (ended bool) {
	vb := vecPool.Get().(*vecBatch)
	defer vecPool.Put(vb)
	for {
		k, size := 0, 0
		var rerr error
		for k < maxVecChunks {
			ch, err := cr.TryReadChunk()
			if b := ch.Bytes(); len(b) > 0 {
				vb.chunks[k], vb.bufs[k] = ch, b
				k++
				size += len(b)
			}
			if err != nil || len(ch.Bytes()) == 0 {
				rerr = err
				break
			}
		}
		if k == 0 && rerr == nil {
			return false
		}
		ended := p.e.moveVec(p.dst, vw, vb.bufs[:k], size, rerr, p.n)
		for i := range k {
			vb.chunks[i].Release()
			vb.chunks[i], vb.bufs[i] = http2.Chunk{}, nil
		}
		if ended {
			return true
		}
	}
}

func (e *evented) directionEnded() {
	if e.pending.Add(-1) != 0 {
		return
	}
	e.toUp.src.SetReadNotify(nil)
	e.toDown.src.SetReadNotify(nil)
	e.done(e.end())
}

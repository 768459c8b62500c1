package accesslog

import (
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// QueueLength bounds the lines waiting for a sink's writer; past it new
// lines are dropped (and counted), so logging never blocks a request.
const QueueLength = 4096

var dropped = stats.NewCounterVec(prometheus.CounterOpts{Name: "waypoint_access_log_dropped_total",
	Help: "Access log lines dropped because their file's writer fell behind."}, []string{"path"})

// Sinks owns the access log files of a process: one writer goroutine per
// path, opened on the first line and ended by Close. Safe for concurrent
// use.
type Sinks struct {
	Log *slog.Logger // write errors; default slog.Default()

	mu     sync.RWMutex     // Write sends under RLock; Close closes under Lock
	sinks  map[string]*sink // guarded by mu
	closed bool             // guarded by mu
	wg     sync.WaitGroup
}

type sink struct {
	lines   chan *[]byte
	dropped prometheus.Counter
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Buffer returns an empty pooled buffer for a line; pass it to Write.
func Buffer() *[]byte {
	b := linePool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// Write queues a line (a Buffer) for path and takes ownership of it.
func (s *Sinks) Write(path string, line *[]byte) {
	s.mu.RLock()
	sk := s.sinks[path]
	if sk == nil && !s.closed {
		s.mu.RUnlock()
		s.open(path)
		s.mu.RLock()
		sk = s.sinks[path]
	}
	if sk == nil || s.closed {
		s.mu.RUnlock()
		linePool.Put(line)
		return
	}
	select {
	case sk.lines <- line:
	default:
		sk.dropped.Inc()
		linePool.Put(line)
	}
	s.mu.RUnlock()
}

func (s *Sinks) open(path string) *sink {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if sk := s.sinks[path]; sk != nil {
		return sk
	}
	var w io.Writer
	var c io.Closer
	switch path {
	case Stdout:
		w = os.Stdout
	case "/dev/stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			s.logger().Error("access log: cannot open", "path", path, "error", err)
			return nil
		}
		w, c = f, f
	}
	if s.sinks == nil {
		s.sinks = map[string]*sink{}
	}
	sk := &sink{lines: make(chan *[]byte, QueueLength), dropped: dropped.WithLabelValues(path)}
	s.sinks[path] = sk
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(path, sk, w, c)
	}()
	return sk
}

func (s *Sinks) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// run writes lines as they come, coalescing what is queued into one write,
// until the queue is closed.
func (s *Sinks) run(path string, sk *sink, w io.Writer, c io.Closer) {
	var batch []byte
	for line := range sk.lines {
		batch = append(batch[:0], *line...)
		linePool.Put(line)
	drain:
		for len(batch) < 64<<10 {
			select {
			case l, ok := <-sk.lines:
				if !ok {
					break drain
				}
				batch = append(batch, *l...)
				linePool.Put(l)
			default:
				break drain
			}
		}
		if _, err := w.Write(batch); err != nil {
			s.logger().Error("access log: write failed", "path", path, "error", err)
		}
	}
	if c != nil {
		c.Close()
	}
}

// Close writes what is queued, closes the files and waits for the
// writers; later lines are dropped.
func (s *Sinks) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, sk := range s.sinks {
		close(sk.lines)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Emit formats r with each logger and queues the lines.
func (s *Sinks) Emit(loggers []*Logger, r *Record) {
	for _, l := range loggers {
		b := Buffer()
		*b = l.Format.Append(*b, r)
		s.Write(l.Path, b)
	}
}

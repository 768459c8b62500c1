package accesslog

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Buffering of each file, as Envoy's access log files buffer: lines are
// appended to a buffer that the file's writer flushes every FlushInterval
// (Envoy's file_flush_interval default, 1 s) or as soon as it holds
// FlushBytes; past MaxPending bytes waiting, new lines are dropped (and
// counted), so logging never blocks a request.
const (
	FlushInterval = time.Second
	FlushBytes    = 64 << 10
	MaxPending    = 16 << 20
)

var dropped = stats.NewCounterVec(prometheus.CounterOpts{Name: "waypoint_access_log_dropped_total",
	Help: "Access log lines dropped because their file's writer fell behind."}, []string{"path"})

var otelDropped = dropped.WithLabelValues("opentelemetry")

// Sinks owns the access log files of a process: one writer goroutine per
// path, started on the first line and ended by Close. Safe for concurrent
// use; a request only appends to a buffer under a mutex.
type Sinks struct {
	Log *slog.Logger // write errors; default slog.Default()
	// Dial opens a connection to one endpoint of the named cluster (an
	// OpenTelemetry collector), as the proxy reaches clusters; without it
	// OpenTelemetry loggers log nothing.
	Dial func(ctx context.Context, cluster string) (net.Conn, error)
	// Node is the proxy's xDS node, which a gRPC access log stream's first
	// message names. Set before the first Emit.
	Node *corev3.Node

	mu     sync.Mutex
	sinks  map[string]*sink     // guarded by mu
	otel   map[string]*otelSink // guarded by mu
	als    map[string]*alsSink  // guarded by mu
	closed bool                 // guarded by mu
	wg     sync.WaitGroup
}

// sink is one file's pending lines and its writer's wake-up.
type sink struct {
	mu      sync.Mutex
	pending []byte // guarded by mu
	spare   []byte // the writer's previous buffer, reused; guarded by mu
	closed  bool   // guarded by mu
	wake    chan struct{}
	dropped prometheus.Counter
}

// Emit formats r with each logger whose filter lets it through and queues
// the lines.
func (s *Sinks) Emit(loggers []*Logger, r *Record) {
	for _, l := range loggers {
		if !l.Filter.Match(r) {
			continue
		}
		if l.OTel != nil {
			s.emitOTel(l.OTel, r)
			continue
		}
		if l.ALS != nil {
			s.emitALS(l.ALS, r)
			continue
		}
		sk := s.sink(l.Path)
		if sk == nil {
			continue
		}
		sk.mu.Lock()
		if sk.closed || len(sk.pending) > MaxPending {
			sk.mu.Unlock()
			sk.dropped.Inc()
			continue
		}
		sk.pending = l.Format.Append(sk.pending, r)
		full := len(sk.pending) >= FlushBytes
		sk.mu.Unlock()
		if full {
			select {
			case sk.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (s *Sinks) sink(path string) *sink {
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
	sk := &sink{wake: make(chan struct{}, 1), dropped: dropped.WithLabelValues(path)}
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

// run flushes the sink's buffer every FlushInterval, when woken for a full
// buffer, and once more when the sink is closed.
func (s *Sinks) run(path string, sk *sink, w io.Writer, c io.Closer) {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-sk.wake:
		}
		sk.mu.Lock()
		buf, closed := sk.pending, sk.closed
		sk.pending, sk.spare = sk.spare[:0], nil
		sk.mu.Unlock()
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				s.logger().Error("access log: write failed", "path", path, "error", err)
			}
		}
		if closed {
			if c != nil {
				c.Close()
			}
			return
		}
		sk.mu.Lock()
		if cap(buf) <= 4*FlushBytes {
			sk.spare = buf[:0]
		}
		sk.mu.Unlock()
	}
}

// Close writes what is pending, closes the files and waits for the
// writers; later lines are dropped.
func (s *Sinks) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, sk := range s.sinks {
		markClosed(&sk.mu, &sk.closed, sk.wake)
	}
	for _, sk := range s.otel {
		markClosed(&sk.mu, &sk.closed, sk.wake)
	}
	for _, sk := range s.als {
		markClosed(&sk.mu, &sk.closed, sk.wake)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// markClosed sets a writer's closed flag under its lock and wakes it, so
// that it writes what is pending and ends.
func markClosed(mu *sync.Mutex, closed *bool, wake chan<- struct{}) {
	mu.Lock()
	*closed = true
	mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

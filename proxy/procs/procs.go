// Package procs keeps the number of Ps the Go scheduler runs goroutines on
// (GOMAXPROCS) at what the process's load needs, up to a ceiling: the
// waypoint's --concurrency, else Go's default (the container's CPU limit,
// else the cores).
//
// # Why
//
// With a P idle, every goroutine made ready (a read loop handing a frame
// to a stream's goroutine, the netpoller waking a connection) makes the
// scheduler wake a thread to run it, and that thread spins looking for
// work before it sleeps again. A request that crosses goroutines pays
// for those wake-ups in CPU and context switches: at 1,000 req/s through
// HBONE the waypoint spent 1.6x the CPU per request at GOMAXPROCS=2 that
// it spent at GOMAXPROCS=1 (4.7 context switches per request against
// 1.7; bench/README.md, "The second core"). Envoy's workers and nginx's
// processes pay nothing for a core they do not need. With a Scaler the
// waypoint runs on one P while one core carries its load and takes
// another P when the load needs it, so CPU per request does not depend on
// the ceiling while throughput still grows with cores.
//
// # Policy
//
// Every Interval the Scaler reads the process's CPU time (getrusage) and
// divides it by the wall time: the cores the process kept busy. It adds a
// P when one window's busy cores reach UpAt of the Ps in use (the Ps are
// nearly saturated: goroutines start to queue), and removes one when, for
// DownAfter since the last change, busy cores stayed at most DownAt of the
// Ps that would remain. DownAt below UpAt keeps it from flapping: CPU per
// request is never lower with more Ps, so a load that allowed a P to go
// does not ask for it back at once.
//
// runtime.GOMAXPROCS stops the world for tens of microseconds; the
// Scaler changes it at most once per window. Calling it turns off the
// runtime's own GOMAXPROCS updates from a changing CPU limit, so the
// ceiling is read once, when the Scaler is made.
package procs

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// The Scaler's gauges, set by Run: Envoy's server.concurrency (the
// ceiling: the workers Envoy would run) and the Ps in use.
var (
	concurrencyGauge = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "envoy_server_concurrency",
		Help: "Worker threads the waypoint may run on (--concurrency, else Go's default GOMAXPROCS)."}, nil).WithLabelValues()
	procsGauge = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "waypoint_server_procs",
		Help: "Ps (GOMAXPROCS) in use: the load's share of the ceiling, envoy_server_concurrency."}, nil).WithLabelValues()
)

// Defaults of Options.
const (
	DefaultInterval  = 100 * time.Millisecond
	DefaultUpAt      = 0.75
	DefaultDownAt    = 0.6
	DefaultDownAfter = 2 * time.Second
)

// Options tune a Scaler; zero fields take the defaults.
type Options struct {
	// Interval between samples (DefaultInterval).
	Interval time.Duration
	// UpAt is the share of the Ps in use that one window's busy cores must
	// reach for a P to be added (DefaultUpAt).
	UpAt float64
	// DownAt is the share of the Ps that would remain that busy cores must
	// stay at or below, over DownAfter, for a P to be removed
	// (DefaultDownAt).
	DownAt float64
	// DownAfter is how long the load must have stayed low, and the Ps
	// unchanged, before a P is removed (DefaultDownAfter).
	DownAfter time.Duration

	// cpuTime and setProcs replace getrusage and runtime.GOMAXPROCS in
	// tests.
	cpuTime  func() time.Duration
	setProcs func(int)
}

// Scaler moves GOMAXPROCS between 1 and its ceiling. Run drives it; Procs
// may be called from any goroutine.
type Scaler struct {
	max   int
	opt   Options
	procs atomic.Int32

	// The sampler's state, owned by Run's goroutine.
	lastCPU  time.Duration
	lastWall time.Time
	// lowSince is the start of the current stretch of windows that were
	// each low enough for a P to go, zero outside one. A change of the Ps
	// ends a stretch, so a stretch of DownAfter is DownAfter since the
	// last change too.
	lowSince time.Time
}

// New returns a Scaler whose ceiling is ceiling Ps (at least 1), starting
// at one P. It does not touch GOMAXPROCS until Run.
func New(ceiling int, o Options) *Scaler {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.UpAt <= 0 {
		o.UpAt = DefaultUpAt
	}
	if o.DownAt <= 0 {
		o.DownAt = DefaultDownAt
	}
	if o.DownAfter <= 0 {
		o.DownAfter = DefaultDownAfter
	}
	if o.cpuTime == nil {
		o.cpuTime = processCPU
	}
	if o.setProcs == nil {
		o.setProcs = func(n int) { runtime.GOMAXPROCS(n) }
	}
	s := &Scaler{max: max(1, ceiling), opt: o}
	s.procs.Store(1)
	return s
}

// Procs is the number of Ps in use.
func (s *Scaler) Procs() int { return int(s.procs.Load()) }

// Run sets GOMAXPROCS to one P, then samples every Interval until ctx
// ends, when it gives the process all max Ps again. It returns at once
// when the ceiling is one P.
func (s *Scaler) Run(ctx context.Context) {
	if s.max <= 1 {
		return
	}
	s.start(time.Now())
	defer func() {
		s.opt.setProcs(s.max)
		s.procs.Store(int32(s.max))
		procsGauge.Set(float64(s.max))
	}()
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}

func (s *Scaler) start(now time.Time) {
	concurrencyGauge.Set(float64(s.max))
	s.opt.setProcs(1)
	s.procs.Store(1)
	procsGauge.Set(1)
	s.lastCPU, s.lastWall = s.opt.cpuTime(), now
}

// sample reads the CPU spent since the last sample and moves the Ps.
func (s *Scaler) sample(now time.Time) {
	cpu := s.opt.cpuTime()
	wall := now.Sub(s.lastWall)
	if wall <= 0 {
		return
	}
	busy := float64(cpu-s.lastCPU) / float64(wall)
	windowStart := s.lastWall
	s.lastCPU, s.lastWall = cpu, now
	p := s.Procs()
	switch {
	case p < s.max && busy >= s.opt.UpAt*float64(p):
		s.set(p + 1)
	case p > 1 && busy <= s.opt.DownAt*float64(p-1):
		if s.lowSince.IsZero() {
			s.lowSince = windowStart
		}
		if now.Sub(s.lowSince) >= s.opt.DownAfter {
			s.set(p - 1)
		}
	default:
		s.lowSince = time.Time{}
	}
}

func (s *Scaler) set(n int) {
	s.opt.setProcs(n)
	s.procs.Store(int32(n))
	procsGauge.Set(float64(n))
	s.lowSince = time.Time{}
}

// processCPU is the user and system CPU time of the whole process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Package overload is the waypoint's overload manager, after Envoy's: resource
// monitors sampled every refresh interval (the global count of downstream
// connections, the memory in use against a limit) set the state of overload
// actions (stop accepting connections or requests, disable keep-alive,
// reset the streams holding the most buffered bytes, release memory to the
// OS). The config is the bootstrap's overload_manager (xds.Overload), or
// the one the command's flags synthesise (Defaults).
//
// The data path asks the Manager cheap questions (an atomic load each):
// ConnGate.Admit at accept, RequestGate.Refuse per request or CONNECT
// stream, KeepAliveDisabled, and registers long-lived streams with Track.
// A nil *Manager, and the gates it returns, allow everything, so callers
// need no "is it configured" branch.
//
// Counters and gauges carry Envoy's names (Envoy's Prometheus form of
// overload.<action>.active, .scale_percent, overload.<monitor>.pressure,
// listener.<name>.downstream_global_cx_overflow,
// listener.<name>.downstream_cx_overload_reject,
// http.<prefix>.downstream_rq_overload_close,
// http.<prefix>.downstream_cx_overload_disable_keepalive).
package overload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/proxy/internal/shrink"
	"github.com/gowaypoint/waypoint/telemetry/stats"
	"github.com/gowaypoint/waypoint/xds"
)

// action indexes the actions the Manager implements.
type action uint8

const (
	actStopConnections action = iota
	actStopRequests
	actDisableKeepAlive
	actResetStreams
	actShrinkHeap
	numActions
)

var actionNames = [numActions]string{
	xds.ActionStopAcceptingConnections, xds.ActionStopAcceptingRequests, xds.ActionDisableHTTPKeepAlive,
	xds.ActionResetHighMemoryStream, xds.ActionShrinkHeap,
}

func actionOf(name string) (action, bool) {
	for a, n := range actionNames {
		if n == name {
			return action(a), true
		}
	}
	return 0, false
}

// promName is Envoy's Prometheus form of a dotted stat name.
func promName(dotted string) string { return "envoy_" + strings.ReplaceAll(dotted, ".", "_") }

var (
	actionActive [numActions]prometheus.Gauge // overload.<action>.active
	actionScale  [numActions]prometheus.Gauge // overload.<action>.scale_percent
	heapPressure = stats.NewGaugeVec(prometheus.GaugeOpts{Name: promName("overload." + xds.MonitorFixedHeap + ".pressure"),
		Help: "Memory in use as a percentage of the fixed_heap monitor's limit."}, nil).WithLabelValues()
	connPressure = stats.NewGaugeVec(prometheus.GaugeOpts{Name: promName("overload." + xds.MonitorDownstreamConnections + ".pressure"),
		Help: "Active downstream connections as a percentage of max_active_downstream_connections."}, nil).WithLabelValues()
	resetCount = stats.NewCounter(prometheus.CounterOpts{Name: promName("overload." + xds.ActionResetHighMemoryStream + ".count"),
		Help: "Streams reset by the reset_high_memory_stream action."})
	released = stats.NewCounter(prometheus.CounterOpts{Name: "waypoint_memory_released_total",
		Help: "Times the overload manager returned free memory to the OS (two GCs, then debug.FreeOSMemory)."})
	globalOverflow = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_global_cx_overflow",
		Help: "Connections refused by the global_downstream_max_connections limit."}, []string{"listener"})
	overloadReject = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_overload_reject",
		Help: "Connections refused by the stop_accepting_connections action."}, []string{"listener"})
	rqOverloadClose = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_overload_close",
		Help: "Requests answered 503 by the stop_accepting_requests action."}, []string{"http_conn_manager_prefix"})
	keepAliveOff = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_cx_overload_disable_keepalive",
		Help: "Connections drained by the disable_http_keepalive action."}, []string{"http_conn_manager_prefix"})
)

func init() {
	for a := range numActions {
		actionActive[a] = stats.NewGaugeVec(prometheus.GaugeOpts{Name: promName("overload." + actionNames[a] + ".active"),
			Help: "1 when the action is saturated (its scale at 100%)."}, nil).WithLabelValues()
		actionScale[a] = stats.NewGaugeVec(prometheus.GaugeOpts{Name: promName("overload." + actionNames[a] + ".scale_percent"),
			Help: "The action's state, 0 to 100."}, nil).WithLabelValues()
	}
}

// Options are what a Manager reads from the process; zero values take the
// real ones (tests inject their own).
type Options struct {
	// MemoryLimit returns GOMEMLIMIT (math.MaxInt64 when unset); default
	// debug.SetMemoryLimit(-1).
	MemoryLimit func() int64
	// Sample reads the memory figures; default ReadMemory.
	Sample func() Memory
	// FreeOSMemory collects and returns free memory to the OS; default
	// ReturnMemory.
	FreeOSMemory func()
	Logger       *slog.Logger // default slog.Default()
}

// trigger is an xds.OverloadTrigger resolved to its monitor.
type trigger struct {
	heap bool // else the connections monitor
	t    xds.OverloadTrigger
}

// Manager runs the monitors and keeps the actions' states. Its methods are
// safe for concurrent use; a nil *Manager allows everything. Run is its one
// goroutine, owned by the caller.
type Manager struct {
	cfg      xds.Overload
	opts     Options
	log      *slog.Logger
	heapMax  uint64 // the heap monitor's limit; 0 without it
	maxConns int64  // 0: no global limit
	triggers [numActions][]trigger
	state    [numActions]atomic.Uint64 // float64 bits of the scale, 0 to 1

	conns atomic.Int64 // active downstream connections, all listeners

	streamsMu sync.Mutex
	streams   shrink.Set[*Tracked] // guarded by streamsMu; its buckets follow it down after a burst

	releaser releaser // memory.go
	resetLog lograte.Reason
}

// ErrNoHeapLimit is New's error for a fixed_heap monitor without a size
// when GOMEMLIMIT is not set either.
var ErrNoHeapLimit = errors.New("overload: the fixed_heap monitor has no max_heap_size_bytes and GOMEMLIMIT is not set")

// New builds a Manager from cfg (nil: no monitors and no actions; the
// memory release after a burst still runs).
func New(cfg *xds.Overload, opts Options) (*Manager, error) {
	if opts.MemoryLimit == nil {
		opts.MemoryLimit = func() int64 { return debug.SetMemoryLimit(-1) }
	}
	if opts.Sample == nil {
		opts.Sample = ReadMemory
	}
	if opts.FreeOSMemory == nil {
		opts.FreeOSMemory = ReturnMemory
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if cfg == nil {
		cfg = &xds.Overload{RefreshInterval: xds.DefaultOverloadRefreshInterval}
	}
	m := &Manager{cfg: *cfg, opts: opts, log: opts.Logger, maxConns: cfg.MaxDownstreamConnections}
	if m.cfg.RefreshInterval <= 0 {
		m.cfg.RefreshInterval = xds.DefaultOverloadRefreshInterval
	}
	if cfg.HeapMonitor {
		m.heapMax = cfg.MaxHeapBytes
		if m.heapMax == 0 {
			lim := opts.MemoryLimit()
			if lim <= 0 || lim == math.MaxInt64 {
				return nil, ErrNoHeapLimit
			}
			m.heapMax = uint64(lim)
		}
	}
	for _, a := range cfg.Actions {
		act, ok := actionOf(a.Name)
		if !ok {
			return nil, fmt.Errorf("overload: action %q not supported", a.Name)
		}
		for _, t := range a.Triggers {
			m.triggers[act] = append(m.triggers[act], trigger{heap: t.Monitor == xds.MonitorFixedHeap, t: t})
		}
	}
	return m, nil
}

// HeapLimit is the heap monitor's limit in bytes (0 without one).
func (m *Manager) HeapLimit() uint64 {
	if m == nil {
		return 0
	}
	return m.heapMax
}

// MaxConnections is the global downstream connection limit (0: none).
func (m *Manager) MaxConnections() int64 {
	if m == nil {
		return 0
	}
	return m.maxConns
}

// Run refreshes every refresh interval until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	if m == nil {
		return
	}
	t := time.NewTicker(m.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Refresh()
		}
	}
}

// Refresh samples the monitors once, sets the actions' states and runs
// the periodic actions (resetting streams, releasing memory). Run calls
// it; tests call it directly.
func (m *Manager) Refresh() {
	if m == nil {
		return
	}
	mem := m.opts.Sample()
	var heapP, connP float64
	if m.heapMax > 0 {
		heapP = float64(mem.InUse) / float64(m.heapMax)
		heapPressure.Set(100 * heapP)
	}
	if m.maxConns > 0 {
		connP = float64(m.conns.Load()) / float64(m.maxConns)
		connPressure.Set(100 * connP)
	}
	for a := range numActions {
		if len(m.triggers[a]) == 0 {
			continue
		}
		s := 0.0
		for _, tr := range m.triggers[a] {
			p := connP
			if tr.heap {
				p = heapP
			}
			s = max(s, value(tr.t, p))
		}
		m.state[a].Store(math.Float64bits(s))
		actionScale[a].Set(100 * s)
		if s >= 1 {
			actionActive[a].Set(1)
		} else {
			actionActive[a].Set(0)
		}
	}
	if s := m.scale(actResetStreams); s > 0 {
		m.resetStreams(s)
	}
	m.release(mem, m.scale(actShrinkHeap) >= 1)
}

// scale is action a's state, 0 to 1.
func (m *Manager) scale(a action) float64 {
	if m == nil {
		return 0
	}
	return math.Float64frombits(m.state[a].Load())
}

// Scale is the named action's state, 0 to 1 (0 for an action not
// configured).
func (m *Manager) Scale(name string) float64 {
	a, ok := actionOf(name)
	if !ok {
		return 0
	}
	return m.scale(a)
}

// KeepAliveDisabled says whether a connection that just served a request
// or stream should be drained (GOAWAY, Connection: close): always when
// disable_http_keepalive is saturated, with a probability of its scale
// below, as Envoy's.
func (m *Manager) KeepAliveDisabled() bool {
	s := m.scale(actDisableKeepAlive)
	return s >= 1 || s > 0 && rand.Float64() < s
}

// Active is the number of downstream connections admitted and not yet
// released.
func (m *Manager) Active() int64 {
	if m == nil {
		return 0
	}
	return m.conns.Load()
}

// ConnGate admits the connections of one listener (its counters resolved
// once). A nil *ConnGate admits all.
type ConnGate struct {
	m                *Manager
	name             string
	overflow, reject prometheus.Counter
	log              lograte.Reason
}

// Listener returns the gate of the listener named name (the name in its
// counters).
func (m *Manager) Listener(name string) *ConnGate {
	if m == nil {
		return nil
	}
	return &ConnGate{m: m, name: name, overflow: globalOverflow.WithLabelValues(name), reject: overloadReject.WithLabelValues(name)}
}

// Admit is called for each accepted connection: false refuses it (the
// caller closes it at once), counted; true counts it among the active
// ones until Release. Allocation-free.
func (g *ConnGate) Admit() bool {
	if g == nil {
		return true
	}
	m := g.m
	if m.scale(actStopConnections) >= 1 {
		g.reject.Inc()
		g.refused("stop_accepting_connections")
		return false
	}
	n := m.conns.Add(1)
	if m.maxConns > 0 && n > m.maxConns {
		m.conns.Add(-1)
		g.overflow.Inc()
		g.refused("global_downstream_max_connections")
		return false
	}
	return true
}

func (g *ConnGate) refused(why string) {
	if ok, n := g.log.Allow(); ok {
		g.m.log.Info("overload: refused connection", "listener", g.name, "by", why, "active", g.m.conns.Load(), "suppressed", n)
	}
}

// Release ends an admitted connection.
func (g *ConnGate) Release() {
	if g != nil {
		g.m.conns.Add(-1)
	}
}

// RequestGate answers requests of one HTTP connection manager (by
// stat_prefix) while stop_accepting_requests is active. A nil
// *RequestGate refuses none.
type RequestGate struct {
	m                 *Manager
	closed, keepAlive prometheus.Counter
}

// HCM returns the request gate of the connection manager with prefix.
func (m *Manager) HCM(prefix string) *RequestGate {
	if m == nil {
		return nil
	}
	return &RequestGate{m: m, closed: rqOverloadClose.WithLabelValues(prefix), keepAlive: keepAliveOff.WithLabelValues(prefix)}
}

// RetryAfter is the retry-after (seconds) of the 503 answered to a
// request refused under overload.
const RetryAfter = "1"

// LocalReplyBody is the body of that 503, Envoy's.
const LocalReplyBody = "envoy overloaded"

// Refuse says whether the request must be answered 503 with retry-after
// (stop_accepting_requests saturated), and counts it. Allocation-free.
func (g *RequestGate) Refuse() bool {
	if g == nil || g.m.scale(actStopRequests) < 1 {
		return false
	}
	g.closed.Inc()
	return true
}

// DisableKeepAlive says whether the connection that carried a request
// should be drained now (KeepAliveDisabled), and counts it.
func (g *RequestGate) DisableKeepAlive() bool {
	if g == nil || !g.m.KeepAliveDisabled() {
		return false
	}
	g.keepAlive.Inc()
	return true
}

// Stream is a long-lived stream the reset_high_memory_stream action may
// reset.
type Stream interface {
	// BufferedBytes is what the stream holds in buffers now.
	BufferedBytes() int
	// Reset ends the stream with an error.
	Reset()
}

// Tracked is a Stream registered with Track.
type Tracked struct{ s Stream }

// Track registers s until the returned function is called (once).
func (m *Manager) Track(s Stream) (untrack func()) {
	if m == nil || len(m.triggers[actResetStreams]) == 0 {
		return func() {}
	}
	t := &Tracked{s: s}
	m.streamsMu.Lock()
	m.streams.Add(t)
	m.streamsMu.Unlock()
	return func() {
		m.streamsMu.Lock()
		m.streams.Delete(t)
		m.streamsMu.Unlock()
	}
}

// MinResetBytes is the least a stream must buffer to be reset by
// reset_high_memory_stream: Envoy's default minimum account to track
// (2^20 bytes).
const MinResetBytes = 1 << 20

// resetStreams is reset_high_memory_stream at scale s, approximated: of
// the tracked streams buffering at least MinResetBytes, the fraction s
// (at least one) holding the most bytes is reset, largest first. Envoy
// resets the streams of its buckets by power of two of buffered bytes, the
// higher buckets first as the scale grows; the effect is the same: the
// biggest holders go first, more of them as the pressure rises.
func (m *Manager) resetStreams(s float64) {
	type cand struct {
		t *Tracked
		n int
	}
	m.streamsMu.Lock()
	var cands []cand
	for t := range m.streams.All() {
		if n := t.s.BufferedBytes(); n >= MinResetBytes {
			cands = append(cands, cand{t, n})
		}
	}
	m.streamsMu.Unlock()
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].n > cands[j].n })
	k := max(1, int(math.Ceil(s*float64(len(cands)))))
	for _, c := range cands[:k] {
		c.t.s.Reset()
		resetCount.Inc()
	}
	if ok, n := m.resetLog.Allow(); ok {
		m.log.Info("overload: reset streams holding the most memory", "reset", k, "largest_bytes", cands[0].n, "suppressed", n)
	}
}

package httpconn

import (
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// What a peer inside a tunnel can make the waypoint log (a defence that
// closes its HTTP/2 connection, a malformed HTTP/1.1 request, headers that
// never finish) is counted each time and logged at INFO at most once a
// second per kind, shared by every connection, with the count held back;
// each event is logged at debug.
var (
	defenceLog       [http2.NumDefences]lograte.Reason
	malformedLog     lograte.Reason
	headerTimeoutLog lograte.Reason
)

// quietLog writes msg at INFO when r allows it (with the count held back),
// else at debug when that is on. args are built by the caller only when
// one of the two will be written: see logEnabled.
func (c *conn) quietLog(r *lograte.Reason, msg string, args ...any) {
	if ok, n := r.Allow(); ok {
		c.env.Log.Info(msg, append(args, "suppressed", n)...)
		return
	}
	c.env.Log.Debug(msg, args...)
}

// defended counts and logs an HTTP/2 connection closed by a defence.
func (c *conn) defended(d http2.Defence, err error) {
	metrics.HCM(c.hcm.StatPrefix).Defence(d)
	c.quietLog(&defenceLog[d], "http: connection closed by a defence", "defence", d.String(), "stat_prefix", c.hcm.StatPrefix,
		"peer", c.down.Peer.String(), "remote", c.down.RemoteAddr, "error", err)
}

// headerTimer is an HTTP/1.1 connection's request_headers_timeout: armed
// when a request head's first bytes arrive and it must wait for more,
// disarmed when ReadRequest returns; when it fires while the connection
// still waits for the head, the connection is closed (Envoy's
// downstream_rq_header_timeout). A nil *headerTimer is off.
type headerTimer struct {
	c       *conn
	timeout time.Duration
	timer   *time.Timer
	fired   atomic.Bool
}

// headersTimeout returns the connection's timer, nil when the connection
// manager sets no request_headers_timeout.
func (c *conn) headersTimeout() *headerTimer {
	if c.hcm.RequestHeadersTimeout <= 0 {
		return nil
	}
	h := &headerTimer{c: c, timeout: c.hcm.RequestHeadersTimeout}
	h.timer = time.AfterFunc(time.Hour, h.expire)
	h.timer.Stop()
	return h
}

// start is http1.ServerConfig.HeadStarted.
func (h *headerTimer) start() {
	if h != nil {
		h.timer.Reset(h.timeout)
	}
}

func (h *headerTimer) disarm() {
	if h != nil {
		h.timer.Stop()
	}
}

func (h *headerTimer) stop() { h.disarm() }

// expire closes the connection if it still waits for the head (as the
// drain's closeIdle does).
func (h *headerTimer) expire() {
	if h.c.idle.CompareAndSwap(idleWaiting, idleClosed) {
		h.fired.Store(true)
		h.c.rw.Close()
	}
}

// report counts and logs a connection the timer closed.
func (h *headerTimer) report() {
	if h == nil || !h.fired.Load() {
		return
	}
	c := h.c
	metrics.HCM(c.hcm.StatPrefix).HeaderTimeouts.Inc()
	c.quietLog(&headerTimeoutLog, "http: request headers timeout", "stat_prefix", c.hcm.StatPrefix,
		"peer", c.down.Peer.String(), "remote", c.down.RemoteAddr, "timeout", h.timeout)
}

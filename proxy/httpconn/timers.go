package httpconn

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// The connection manager's timers, after Envoy's (docs/hardening.md,
// "Timeouts"):
//
//   - A stream's stream_idle_timeout, request_timeout, max_stream_duration
//     and, while an HTTP/1.1 request head is arriving,
//     request_headers_timeout run on one timer per stream (streamTimer):
//     per connection for HTTP/1.1, reused from one request to the next;
//     from a pool for HTTP/2. Activity (request or response bytes read
//     through the connection manager) stores a clock reading; the timer,
//     when it goes off, compares the deadlines with the clock and re-arms
//     itself for the next one, so that bytes moving cost no timer
//     operation.
//   - When a deadline passes before the response has started, the stream's
//     work is stopped (its context cancelled, a request body still
//     arriving cut) and it is answered as Envoy answers: 408 when the
//     request had not arrived whole, 504 when it had, with Envoy's body,
//     response flag (SI for the idle timeout) and response code details.
//     Once the response has started the stream is reset (HTTP/2
//     RST_STREAM(NO_ERROR), HTTP/1.1 the connection closed). An HTTP/1.1
//     connection ends after a stream its timer ended.
//   - An HTTP/2 request header block that does not come whole is bounded
//     by the engine (http2.Config.RequestHeadersTimeout, the least of the
//     four timeouts, which Envoy all runs from the stream's first frame).
//   - max_connection_duration drains the connection: HTTP/2 with the
//     GOAWAY notice, drain_timeout, then the final GOAWAY; HTTP/1.1 with
//     "connection: close" on the next response, an idle connection being
//     kept drain_timeout for a last request.

// monoBase anchors mono.
var monoBase = time.Now()

// mono is a monotonic clock reading in nanoseconds.
func mono() int64 { return int64(time.Since(monoBase)) }

// timeoutReason says which timeout ended a stream.
type timeoutReason uint8

const (
	timeoutNone      timeoutReason = iota
	timeoutIdle                    // stream_idle_timeout
	timeoutRequest                 // request_timeout
	timeoutMaxStream               // max_stream_duration
	timeoutHeaders                 // request_headers_timeout
)

// details is Envoy's %RESPONSE_CODE_DETAILS% for the reason.
func (r timeoutReason) details() string {
	switch r {
	case timeoutIdle:
		return "stream_idle_timeout"
	case timeoutRequest:
		return "request_overall_timeout"
	case timeoutMaxStream:
		return "max_duration_timeout"
	case timeoutHeaders:
		return "request_header_timeout"
	}
	return ""
}

// count increments Envoy's counter of the reason for the connection
// manager with prefix.
func (r timeoutReason) count(prefix string) {
	st := metrics.HCM(prefix)
	switch r {
	case timeoutIdle:
		st.IdleTimeouts.Inc()
	case timeoutRequest:
		st.RequestTimeouts.Inc()
	case timeoutMaxStream:
		st.MaxDurationReached.Inc()
	case timeoutHeaders:
		st.HeaderTimeouts.Inc()
	}
}

// hasStreamTimers reports whether hcm bounds streams in time (beyond
// their heads).
func hasStreamTimers(hcm *xds.HTTPConnectionManager) bool {
	return hcm.StreamIdleTimeout > 0 || hcm.RequestTimeout > 0 || hcm.MaxStreamDuration > 0
}

// headTimeout is the least of the timeouts that bound a request head
// (Envoy runs them all from the stream's first bytes), and its reason;
// zero when none.
func headTimeout(hcm *xds.HTTPConnectionManager) (time.Duration, timeoutReason) {
	var d time.Duration
	r := timeoutNone
	for _, t := range [...]struct {
		d time.Duration
		r timeoutReason
	}{{hcm.RequestHeadersTimeout, timeoutHeaders}, {hcm.StreamIdleTimeout, timeoutIdle},
		{hcm.RequestTimeout, timeoutRequest}, {hcm.MaxStreamDuration, timeoutMaxStream}} {
		if t.d > 0 && (d == 0 || t.d < d) {
			d, r = t.d, t.r
		}
	}
	return d, r
}

// Phases of a stream timer.
const (
	phaseOff    uint8 = iota
	phaseHead         // an HTTP/1.1 request head is arriving
	phaseStream       // from the complete head to the end of the response
)

// streamTimer bounds one stream at a time (see above). Its owner, the
// goroutine serving the stream, calls beginHead or beginStream, respond,
// and end; touch and requestDone may come from the goroutine reading the
// request body. fire runs on the timer's goroutine. A timer that goes off
// late, for a stream since ended, judges the stream in place at that
// moment by its own deadlines, so reuse needs no generation count.
type streamTimer struct {
	timer *time.Timer // made by the first arm, then reset
	last  atomic.Int64

	mu sync.Mutex
	// Guarded by mu.
	c                                 *conn         // bind
	idle, request, maxStream, headers time.Duration // the connection manager's
	phase                             uint8
	start                             int64 // mono when the stream began
	reqDone                           bool  // the request was received whole
	started                           bool  // the response started: no local reply
	reason                            timeoutReason
	h2                                *http2.ServerStream // the HTTP/2 stream; nil for HTTP/1.1
	h1cancel                          func()              // HTTP/1.1: ends the stream's context
}

var streamTimers = sync.Pool{New: func() any { return new(streamTimer) }}

// bind gives the timer to connection c (nil: none), with the timeouts of
// its connection manager.
func (tm *streamTimer) bind(c *conn) {
	tm.mu.Lock()
	tm.c = c
	if c != nil {
		hcm := c.hcm
		tm.idle, tm.request, tm.maxStream, tm.headers = hcm.StreamIdleTimeout, hcm.RequestTimeout, hcm.MaxStreamDuration, hcm.RequestHeadersTimeout
	}
	tm.mu.Unlock()
}

// touch records activity on the stream.
func (tm *streamTimer) touch() { tm.last.Store(mono()) }

// beginHead starts an HTTP/1.1 request head's timeouts: the head has
// begun to arrive and the rest must be waited for (http1's HeadStarted,
// on the goroutine reading it).
func (tm *streamTimer) beginHead() {
	now := mono()
	tm.mu.Lock()
	tm.phase, tm.start, tm.reqDone, tm.started, tm.reason = phaseHead, now, false, false, timeoutNone
	tm.last.Store(now)
	tm.armLocked(now)
	tm.mu.Unlock()
}

// beginStream starts a stream whose request head is in: its clock runs
// from the head's first bytes when beginHead saw them, else from now.
// hasBody says the request has a body still to come; h2 is the HTTP/2
// stream (nil for HTTP/1.1).
func (tm *streamTimer) beginStream(h2 *http2.ServerStream, hasBody bool) {
	now := mono()
	tm.mu.Lock()
	if tm.phase != phaseHead {
		tm.start = now
	}
	tm.phase, tm.reqDone, tm.started, tm.reason, tm.h2 = phaseStream, !hasBody, false, timeoutNone, h2
	tm.last.Store(now)
	if tm.idle <= 0 && tm.request <= 0 && tm.maxStream <= 0 {
		tm.phase = phaseOff
		tm.mu.Unlock()
		tm.stop()
		return
	}
	tm.armLocked(now)
	tm.mu.Unlock()
}

// requestDone records that the request was received whole.
func (tm *streamTimer) requestDone() {
	tm.mu.Lock()
	tm.reqDone = true
	tm.mu.Unlock()
}

// respond is called as the response is about to be written: it returns
// the reason when a timeout went off before (the stream is then answered
// with timeoutReply), else marks the response started; reqDone says
// whether the request was received whole.
func (tm *streamTimer) respond() (r timeoutReason, reqDone bool) {
	tm.mu.Lock()
	r, reqDone = tm.reason, tm.reqDone
	if r == timeoutNone && tm.phase == phaseStream {
		tm.started = true
	}
	tm.mu.Unlock()
	tm.touch()
	return r, reqDone
}

// answered reports whether a timeout went off before the response
// started: the response is then its local reply (timeoutReply). False
// for a nil timer.
func (tm *streamTimer) answered() bool {
	if tm == nil {
		return false
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.reason != timeoutNone && !tm.started
}

// tripped reports whether a timeout ended the stream (its context, if
// cancelled, was cancelled by the timer). False for a nil timer.
func (tm *streamTimer) tripped() bool {
	if tm == nil {
		return false
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.reason != timeoutNone
}

// end stops the timer for the stream and returns the reason when a
// timeout ended it; timeoutNone for a nil timer.
func (tm *streamTimer) end() timeoutReason {
	if tm == nil {
		return timeoutNone
	}
	tm.mu.Lock()
	r := tm.reason
	tm.phase, tm.reason, tm.h2 = phaseOff, timeoutNone, nil
	tm.mu.Unlock()
	tm.stop()
	return r
}

func (tm *streamTimer) stop() {
	if tm.timer != nil {
		tm.timer.Stop()
	}
}

// dueLocked returns the reason of the earliest deadline passed at now, or
// timeoutNone and the next deadline (0: none).
func (tm *streamTimer) dueLocked(now int64) (timeoutReason, int64) {
	var ds [4]struct {
		r  timeoutReason
		at int64
	}
	n := 0
	if tm.idle > 0 {
		ds[n].r, ds[n].at = timeoutIdle, tm.last.Load()+int64(tm.idle)
		n++
	}
	if tm.request > 0 && !tm.reqDone && !tm.started {
		ds[n].r, ds[n].at = timeoutRequest, tm.start+int64(tm.request)
		n++
	}
	if tm.maxStream > 0 {
		ds[n].r, ds[n].at = timeoutMaxStream, tm.start+int64(tm.maxStream)
		n++
	}
	if tm.headers > 0 && tm.phase == phaseHead {
		ds[n].r, ds[n].at = timeoutHeaders, tm.start+int64(tm.headers)
		n++
	}
	due, dueAt, next := timeoutNone, int64(0), int64(0)
	for _, d := range ds[:n] {
		switch {
		case d.at <= now:
			if due == timeoutNone || d.at < dueAt {
				due, dueAt = d.r, d.at
			}
		case next == 0 || d.at < next:
			next = d.at
		}
	}
	return due, next
}

// armLocked sets the timer for the earliest deadline (at once when one
// has passed), or stops it when there is none.
func (tm *streamTimer) armLocked(now int64) {
	r, next := tm.dueLocked(now)
	var d time.Duration
	switch {
	case r != timeoutNone:
	case next != 0:
		d = time.Duration(next - now)
	default:
		tm.stop()
		return
	}
	if tm.timer == nil {
		tm.timer = time.AfterFunc(d, tm.fire)
	} else {
		tm.timer.Reset(d)
	}
}

// fire is the timer: it acts on a deadline passed, or re-arms itself for
// the next one (activity moved the idle deadline).
func (tm *streamTimer) fire() {
	now := mono()
	tm.mu.Lock()
	if tm.phase == phaseOff || tm.reason != timeoutNone {
		tm.mu.Unlock()
		return
	}
	r, next := tm.dueLocked(now)
	if r == timeoutNone {
		if next != 0 {
			tm.timer.Reset(time.Duration(next - now))
		}
		tm.mu.Unlock()
		return
	}
	c := tm.c
	if tm.phase == phaseHead {
		// An HTTP/1.1 head still arriving: the connection is closed, unless
		// the head has just come whole (its stream's deadlines take over).
		if !c.idle.CompareAndSwap(idleWaiting, idleClosed) {
			tm.mu.Unlock()
			return
		}
		tm.reason = r
		tm.mu.Unlock()
		r.count(c.hcm.StatPrefix)
		c.rw.Close()
		return
	}
	tm.reason = r
	started, reqDone, h2, cancel := tm.started, tm.reqDone, tm.h2, tm.h1cancel
	tm.mu.Unlock()
	r.count(c.hcm.StatPrefix)
	switch {
	case h2 != nil && started:
		h2.ResetAsync(http2.ErrCodeNo) // Envoy's local reset
	case h2 != nil:
		if !reqDone {
			h2.CloseRead() // a body read waiting for DATA ends
		}
		h2.CancelContext()
	case started:
		c.rw.Close()
		cancel()
	default:
		if !reqDone && c.rw.SetReadDeadline(time.Unix(1, 0)) != nil {
			// A body read waiting for bytes must end; without a read
			// deadline (an HBONE stream) only closing does that, and the
			// local reply is lost with the connection.
			c.rw.Close()
		}
		cancel()
	}
}

// timeoutReply answers s, whose timer went off before its response
// started, as Envoy does: 408 when the request was not received whole
// (reqDone false), 504 when it was, with Envoy's body, flag and details.
// A response the chain made meanwhile is dropped.
func timeoutReply(s *filters.Stream, r timeoutReason, reqDone bool) {
	if s.Response != nil {
		closeBody(s.Response)
	}
	code := http.StatusRequestTimeout
	if reqDone {
		code = http.StatusGatewayTimeout
	}
	// The chain saw its context end, or its body read fail at the
	// deadline the timer set: the connection manager's doing, not the
	// client leaving nor the upstream timing out; the flag of the chain's
	// own local reply for that error (DC, UT) goes with the reply, which
	// SendLocalReply replaces.
	switch r {
	case timeoutIdle:
		s.SendLocalReply(code, "stream timeout", filters.FlagSI)
	case timeoutRequest:
		s.SendLocalReply(code, "request timeout", 0)
	default:
		s.SendLocalReply(code, "downstream duration timeout", 0)
		grpc := status.GRPCDeadlineExceeded
		s.Local.GRPCStatus = &grpc
	}
	s.ResponseCodeDetails = r.details()
}

// markReset records on s, whose timer reset it after its response
// started, what Envoy's access log shows.
func markReset(s *filters.Stream, r timeoutReason) {
	s.ResponseFlags &^= filters.FlagDC
	if r == timeoutIdle {
		s.AddResponseFlag(filters.FlagSI)
	}
	s.ResponseCodeDetails = r.details()
}

// h1Drain is an HTTP/1.1 connection's max_connection_duration: when it
// passes, the connection is draining (the response in flight, or the next
// one, carries "connection: close"); an idle connection is kept
// drain_timeout for a last request, then closed.
type h1Drain struct {
	c *conn
	t *time.Timer
}

// startMaxDuration arms max_connection_duration on an HTTP/1.1
// connection; the result stops it (nil when there is none).
func (c *conn) startMaxDuration() *h1Drain {
	d := c.hcm.MaxConnectionDuration
	if d <= 0 {
		return nil
	}
	h := &h1Drain{c: c}
	h.t = time.AfterFunc(time.Hour, h.fire)
	h.t.Stop()
	h.t.Reset(d)
	return h
}

func (h *h1Drain) stop() {
	if h != nil {
		h.t.Stop()
	}
}

func (h *h1Drain) fire() {
	c := h.c
	if !c.draining.Swap(true) {
		metrics.HCM(c.hcm.StatPrefix).CxMaxDurationReached.Inc()
		if dt := c.hcm.DrainTimeout; dt > 0 && c.idle.Load() == idleWaiting {
			h.t.Reset(dt)
			return
		}
	}
	c.closeIdle()
}

// h2Context is the context an HTTP/2 connection is served under: the
// drain context, ended also by the connection manager's own drains
// (disable_http_keepalive: the final GOAWAY at once;
// max_connection_duration: with the notice, http2.ErrShutdownNotice).
// release stops its timer.
func (c *conn) h2Context() (ctx context.Context, release func()) {
	overload, d := c.env.Overload != nil, c.hcm.MaxConnectionDuration
	if !overload && d <= 0 {
		return c.ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	if overload {
		c.drainH2 = func() { cancel(nil) }
	}
	var t *time.Timer
	if d > 0 {
		prefix := c.hcm.StatPrefix
		t = time.AfterFunc(d, func() {
			metrics.HCM(prefix).CxMaxDurationReached.Inc()
			cancel(http2.ErrShutdownNotice)
		})
	}
	return ctx, func() {
		if t != nil {
			t.Stop()
		}
		cancel(nil)
	}
}

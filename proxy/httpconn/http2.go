package httpconn

import (
	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// serveHTTP2 serves HTTP/2 on the connection: the engine runs each
// stream's handler on its own goroutine and owns them all until the
// connection ends; it closes the connection then. The drain context's end
// is its graceful shutdown (GOAWAY); max_connection_duration's is the same
// with the GOAWAY notice first and drain_timeout between the two
// (timers.go).
func (c *conn) serveHTTP2() {
	cfg := http2.Config{
		MaxConcurrentStreams: c.hcm.HTTP2.MaxConcurrentStreams,
		InitialStreamWindow:  int32(c.hcm.HTTP2.InitialStreamWindowSize),
		InitialConnWindow:    int32(c.hcm.HTTP2.InitialConnectionWindowSize),
		MaxHeaderListSize:    uint32(c.hcm.MaxRequestHeadersBytes),
		MaxHeaderCount:       c.hcm.MaxHeadersCount,
		IdleTimeout:          c.hcm.IdleTimeout,
		ShutdownNotice:       c.hcm.DrainTimeout,
	}
	if d, r := headTimeout(c.hcm); d > 0 {
		// A header block in more than one frame: the engine answers 408.
		prefix := c.hcm.StatPrefix
		cfg.RequestHeadersTimeout = d
		cfg.OnRequestHeadersTimeout = func() { r.count(prefix) }
	}
	ctx, release := c.h2Context()
	defer release()
	err := http2.ServeConn(ctx, c.rw, cfg, http2.HandlerFunc(c.serveStream))
	if d := http2.DefenceOf(err); d != http2.DefenceNone {
		c.defended(d, err)
	} else if err != nil {
		c.logf("HTTP/2 connection ended", "error", err)
	}
}

// serveStream runs one HTTP/2 stream through the chain.
func (c *conn) serveStream(st *http2.ServerStream) {
	var (
		local l7.Response
		s     filters.Stream
		tel   streamTelemetry
		tm    *streamTimer
	)
	req := st.Request()
	if hasStreamTimers(c.hcm) {
		tm = streamTimers.Get().(*streamTimer)
		tm.bind(c)
		tm.beginStream(st, req.Body != nil)
	}
	resp, _, gate := c.run(st.Context(), &s, req, &local, &tel, tm)
	timedOut := tm.answered() // the response is the timeout's local reply
	if c.env.Resets != nil && st.Context().Err() != nil && !tm.tripped() {
		// Reset by the peer (or its connection lost) before the response,
		// not by its own timer.
		c.env.Resets.Reset(c.down.Peer)
	}
	if resp.Status == 101 {
		// HTTP/2 has no 101; an upgrade is an extended CONNECT answered 200.
		resp.Status = 200
		if tm != nil && resp.Body != nil {
			// The upgraded stream's bytes from the upstream are activity.
			tel.respBody.r = resp.Body
			resp.Body = &tel.respBody
		}
	}
	err := st.WriteResponse(resp)
	r := tm.end()
	switch {
	case r != timeoutNone && !timedOut:
		markReset(&s, r) // reset by its timer once the response had started
	case err != nil:
		s.AddResponseFlag(filters.FlagDC)
		st.Reset(http2.ErrCodeCancel)
	}
	if c.drainH2 != nil && !c.h2Drained.Load() && gate.DisableKeepAlive() && c.h2Drained.CompareAndSwap(false, true) {
		c.drainH2() // GOAWAY: the streams open finish, no new ones
	}
	c.done(&s, resp, &tel)
	closeBody(resp)
	s.End()
	if tm != nil {
		tm.bind(nil)
		streamTimers.Put(tm)
	}
}

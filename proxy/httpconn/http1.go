package httpconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http1"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/drain"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// serveHTTP1 serves HTTP/1.1 requests one after the other on the
// connection, on the calling goroutine, reusing the request, stream and
// local-reply storage. When the drain context ends it serves no further
// request: a response in flight is the connection's last, and a connection
// waiting for its next request is closed at once (a request whose head is
// arriving just then is lost, as whenever a server closes an idle
// keep-alive connection; clients retry it on a new one). The connection
// manager's timers (timers.go) use one timer for the connection's streams,
// and one for max_connection_duration.
func (c *conn) serveHTTP1() {
	var (
		tm          *streamTimer
		headStarted func()
	)
	if d, _ := headTimeout(c.hcm); d > 0 {
		tm = new(streamTimer)
		tm.bind(c)
		headStarted = tm.beginHead
		defer tm.end()
	}
	sc := http1.NewServerConn(c.rw, http1.ServerConfig{
		Limits:      http1.Limits{MaxHeaderBytes: c.hcm.MaxRequestHeadersBytes, MaxHeaders: c.hcm.MaxHeadersCount},
		IdleTimeout: c.hcm.IdleTimeout,
		HeadStarted: headStarted,
	})
	var (
		req   l7.Request
		local l7.Response
		s     filters.Stream
		body  bodyWatch
		tel   streamTelemetry
	)
	// An HTTP/1.1 connection serves one request at a time on this
	// goroutine: a client that leaves is seen when the response is
	// written, so the streams' context carries no cancellation (and costs
	// no allocation per request to watch), unless the stream timers must
	// be able to stop a stream's work: then it is one streamCtx for the
	// connection, which the upstream watches without allocating.
	ctx := context.WithoutCancel(c.ctx)
	var sctx *streamCtx
	if tm != nil && hasStreamTimers(c.hcm) {
		sctx = newStreamCtx(ctx)
		ctx, tm.h1cancel = sctx, sctx.cancel
	}
	if c.ctx.Done() != nil {
		stop := drain.AfterFunc(c.ctx, c.closeIdle)
		defer stop()
	}
	maxDur := c.startMaxDuration()
	defer maxDur.stop()
	for {
		c.idle.Store(idleWaiting)
		if c.ctx.Err() != nil {
			return // drained between requests
		}
		err := sc.ReadRequest(&req)
		if !c.idle.CompareAndSwap(idleWaiting, idleBusy) {
			c.headClosed(tm) // closed by a head's timeout, or by a drain while waiting
			return
		}
		if err != nil {
			tm.end()
			c.refuse(sc, err)
			return
		}
		if tm != nil {
			if sctx != nil {
				sctx.forget()
			}
			tm.beginStream(nil, req.Body != nil)
		}
		if req.Body != nil {
			body = bodyWatch{r: req.Body}
			req.Body = &body
		}
		resp, current, gate := c.run(ctx, &s, &req, &local, &tel, tm)
		if body.err != nil {
			// The request's own framing was broken: whatever the chain made
			// of it, the client gets its 400 (or 413, 501) and the
			// connection ends, as when the head is malformed.
			tm.end()
			c.done(&s, resp, &tel)
			closeBody(resp)
			s.End()
			c.refuse(sc, body.err)
			return
		}
		if resp.Status == 101 {
			tm.end()
			c.done(&s, resp, &tel)
			c.upgrade(sc, &req, resp, &s)
			return
		}
		timedOut := tm.answered() // the response is the timeout's local reply
		if sc.KeepAlive() && (gate.DisableKeepAlive() || c.draining.Load() || timedOut) {
			// disable_http_keepalive, max_connection_duration, or a stream
			// its timer ended: "connection: close".
			sc.CloseAfter()
		}
		err = sc.WriteResponse(&req, resp)
		r := tm.end()
		switch {
		case r != timeoutNone && !timedOut:
			markReset(&s, r) // reset by its timer once the response had started
		case err != nil:
			s.AddResponseFlag(filters.FlagDC)
		}
		c.done(&s, resp, &tel)
		closeBody(resp)
		s.End()
		if err != nil {
			c.logf("writing response", "error", err)
			return
		}
		if !sc.KeepAlive() || !current || c.ctx.Err() != nil || c.draining.Load() || r != timeoutNone {
			return
		}
	}
}

// headClosed reports a connection closed while its request head was
// arriving: counted by the timer that closed it, logged here (at INFO at
// most once a second for all connections); a drain's close is not
// reported.
func (c *conn) headClosed(tm *streamTimer) {
	if tm == nil {
		return
	}
	r := tm.end()
	if r == timeoutNone {
		return
	}
	c.quietLog(&headerTimeoutLog, "http: request head timeout", "timeout", r.details(), "stat_prefix", c.hcm.StatPrefix,
		"peer", c.down.Peer.String(), "remote", c.down.RemoteAddr)
}

// States of conn.idle.
const (
	idleBusy    int32 = iota // reading or serving a request
	idleWaiting              // waiting for the next request's head
	idleClosed               // closed by the drain while waiting
)

// closeIdle is the drain's callback: it closes the connection if it is
// waiting for its next request (the blocked read then ends); a connection
// serving a request ends after its response instead. It runs on the
// goroutine context.AfterFunc starts, which ends as soon as it returns;
// serveHTTP1 unregisters it when it returns (a call already started may
// then close a connection that is closing anyway).
func (c *conn) closeIdle() {
	if c.idle.CompareAndSwap(idleWaiting, idleClosed) {
		c.rw.Close()
	}
}

// refuse answers a malformed request with its status, logs it, and lets
// the connection close gracefully (the client's remaining bytes are read
// and dropped for a moment, so that the answer is not lost to a reset).
func (c *conn) refuse(sc *http1.ServerConn, err error) {
	var pe *http1.Error
	if !errors.As(err, &pe) {
		return
	}
	c.quietLog(&malformedLog, "http: refused malformed request", "peer", c.down.Peer.String(),
		"remote", c.down.RemoteAddr, "status", pe.Status, "reason", pe.Reason)
	if sc.WriteError(pe) == nil {
		lingerClose(c.rw)
	}
}

// lingerClose half-closes rw and discards what the peer still sends, up to
// a bound (in time too, where the connection has a read deadline), as
// nginx's lingering_close does.
func lingerClose(rw *downstream.Conn) {
	if rw.CloseWrite() != nil {
		return
	}
	rw.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, rw, lingerBytes)
}

const (
	lingerTimeout = time.Second
	lingerBytes   = 256 << 10
)

// bodyWatch notes a request body's protocol error (bad chunk framing) on
// its way to whoever reads the body, so the connection manager can answer
// it as a malformed request.
type bodyWatch struct {
	r   io.Reader
	err error
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var pe *http1.Error
	if err != nil && errors.As(err, &pe) {
		b.err = pe
	}
	return n, err
}

// upgrade writes a 101 and relays bytes between the downstream connection
// and the upgraded upstream stream until both sides end; the relay closes
// both (or resets both after an error).
func (c *conn) upgrade(sc *http1.ServerConn, req *l7.Request, resp *l7.Response, s *filters.Stream) {
	defer s.End()
	up, ok := resp.Body.(relay.Conn)
	if !ok {
		c.logf("upgrade", "error", errUpgradeBody)
		closeBody(resp)
		return
	}
	resp.Body = nil
	if err := sc.WriteResponse(req, resp); err != nil {
		up.Close()
		return
	}
	_, buffered := sc.Hijack() // the stream is c.rw
	c.rw.Unread(bytes.Clone(buffered))
	// The upgraded stream's stream_idle_timeout and max_stream_duration
	// (from the upgrade on) are the relay's, counted as Envoy's.
	res := relay.Run(c.rw.Relayed(), up, relay.Options{IdleTimeout: c.hcm.StreamIdleTimeout, MaxDuration: c.hcm.MaxStreamDuration}, nil)
	switch res.Err {
	case relay.ErrIdleTimeout:
		timeoutIdle.count(c.hcm.StatPrefix)
	case relay.ErrMaxDuration:
		timeoutMaxStream.count(c.hcm.StatPrefix)
	}
}

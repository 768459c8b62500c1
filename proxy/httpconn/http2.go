package httpconn

import (
	"context"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// serveHTTP2 serves HTTP/2 on the connection: the engine runs each
// stream's handler on its own goroutine and owns them all until the
// connection ends; it closes the connection then. The drain context's end
// is its graceful shutdown (GOAWAY).
func (c *conn) serveHTTP2() {
	cfg := http2.Config{
		MaxConcurrentStreams: c.hcm.HTTP2.MaxConcurrentStreams,
		InitialStreamWindow:  int32(c.hcm.HTTP2.InitialStreamWindowSize),
		InitialConnWindow:    int32(c.hcm.HTTP2.InitialConnectionWindowSize),
		MaxHeaderListSize:    uint32(c.hcm.MaxRequestHeadersBytes),
		MaxHeaderCount:       c.hcm.MaxHeadersCount,
		IdleTimeout:          c.hcm.IdleTimeout,
	}
	ctx := c.ctx
	if c.env.Overload != nil {
		// disable_http_keepalive drains the connection (GOAWAY) as the
		// drain context's end does.
		var drain context.CancelFunc
		ctx, drain = context.WithCancel(ctx)
		defer drain()
		c.drainH2 = drain
	}
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
	)
	req := st.Request()
	resp, _, gate := c.run(st.Context(), &s, req, &local, &tel)
	if c.env.Resets != nil && st.Context().Err() != nil {
		// Reset by the peer (or its connection lost) before the response.
		c.env.Resets.Reset(c.down.Peer)
	}
	if resp.Status == 101 {
		// HTTP/2 has no 101; an upgrade is an extended CONNECT answered 200.
		resp.Status = 200
	}
	if err := st.WriteResponse(resp); err != nil {
		s.AddResponseFlag(filters.FlagDC)
		st.Reset(http2.ErrCodeCancel)
	}
	if c.drainH2 != nil && !c.h2Drained.Load() && gate.DisableKeepAlive() && c.h2Drained.CompareAndSwap(false, true) {
		c.drainH2() // GOAWAY: the streams open finish, no new ones
	}
	c.done(&s, resp, &tel)
	closeBody(resp)
	s.End()
}

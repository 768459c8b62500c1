package upstream

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/http1"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/replay"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// h1Pool keeps the HTTP/1.1 connections to one endpoint of one cluster,
// as Envoy's HTTP/1 pool for one host. A connection carries one exchange
// at a time; it returns to the pool when its response body is closed after
// being read to the end, and is closed otherwise.
//
// A request whose downstream leaves costs the endpoint no new connection
// (docs/hardening.md, "Amplification"): one that left before its
// connection was chosen opens none; a connection being dialled for it is
// finished and pooled (dialFor); a connection it holds whose request was
// not yet written goes back to the pool unwritten; one whose request is
// being written or whose response is awaited goes on for at most
// cancelDrainTimeout, its response read and dropped up to
// cancelDrainBytes, and is pooled if that ends the response, else closed. A request finds an idle
// connection, or opens one within the cluster's max_connections, or waits
// as a pending request (max_pending_requests) for the next connection this
// pool frees; beyond that it overflows. An idle connection closes after
// the cluster's idle timeout (common_http_protocol_options.idle_timeout,
// 1 h by default, 0: never), closed by the reaper without waiting for a
// request to find it stale. Owned by its endpoint. Safe for concurrent
// use.
//
// Goroutines: none of its own; the reaper is a timer callback, owned by
// the pool, armed while connections are idle and stopped by Close (one
// already running returns at once: it only closes idle connections).
type h1Pool struct {
	mu   sync.Mutex
	idle []*h1Conn // most recently used last
	// open counts the pool's connections, being dialed, busy or idle: a
	// pool with none may open one past max_connections, as Envoy's does.
	open    int
	waiters []*h1Waiter // pending requests, oldest first
	closed  bool

	reaper      *time.Timer   // made on first use, then Reset
	reaperOn    bool          // reaper armed
	idleTimeout time.Duration // the cluster's, as of the last put
}

// h1Waiter is a pending request: it is handed the next connection the pool
// frees, or told (nil) that one closed, so that it may open another.
type h1Waiter struct {
	ch chan *h1Conn // buffered: one message
}

// h1Conn is one upstream HTTP/1.1 connection and its exchange state,
// reused from one exchange to the next so that a steady stream of
// requests allocates nothing here. Owned by one exchange at a time.
type h1Conn struct {
	pool      *h1Pool
	rwc       relay.Conn
	cc        *http1.ClientConn
	release   func() // the max_connections slot
	requests  uint32
	born      time.Time // when it was opened (max_connection_duration)
	single    bool      // serves one exchange: it began with a PROXY protocol header
	tlsKey    tlsKey    // the cluster's TLSKey (and the request's host) when it was dialled
	idleSince time.Time
	gone      atomic.Bool // closed

	resp  l7.Response
	body  h1Body
	timer *time.Timer // the exchange's deadline: aborts the connection
	// armed says the timer was set for this exchange; fired that it went
	// off (the connection is then closed and not reused).
	armed   bool
	fired   atomic.Bool
	stopCtx func() bool // stops the downstream-cancellation hook; nil if none
	// notifier and notifyHandle are the hook's registration when the
	// downstream's context is a filters.CancelNotifier (no allocation per
	// exchange, as stopCtx's context.AfterFunc has); nil notifier: none.
	notifier     filters.CancelNotifier
	notifyHandle uint64

	// The downstream-cancellation hook (cancelled) arms drainT rather
	// than closing the connection: the exchange may finish, bounded, and
	// the connection be reused. gen numbers the exchanges, so that a hook
	// of an exchange already over does nothing.
	gen       atomic.Uint64
	cmu       sync.Mutex  // guards what follows, between the hook, drainT and the owner
	draining  bool        // the hook ran in this exchange: drainT armed
	drainGone bool        // drainT went off in this exchange: the connection was closed
	drainT    *time.Timer // made by the first hook that runs
}

// Bounds of the exchange of a request whose downstream left (bound's
// hook): how long it may go on, and how much of its response is read and
// dropped, for its connection to be reused rather than closed.
const (
	cancelDrainTimeout = time.Second
	cancelDrainBytes   = 64 << 10
)

// popIdleLocked takes the most recently used idle connection: c if it is
// still within the cluster's idle timeout and max_connection_duration,
// and was dialled with the TLS it originates now (tlsKey), else stale, for the caller to close once p.mu is released (close takes
// it) before looking again. Both nil: none idle. p.mu is held.
func (p *h1Pool) popIdleLocked(opts xds.HTTPOptions, tlsKey tlsKey) (c, stale *h1Conn) {
	if len(p.idle) == 0 {
		return nil, nil
	}
	c = p.idle[len(p.idle)-1]
	p.idle[len(p.idle)-1] = nil
	p.idle = p.idle[:len(p.idle)-1]
	if opts.IdleTimeout > 0 && time.Since(c.idleSince) > opts.IdleTimeout || c.expired(opts) || c.tlsKey != tlsKey {
		return nil, c
	}
	return c, nil
}

// armReaperLocked arms the reaper to run in d. p.mu is held.
func (p *h1Pool) armReaperLocked(d time.Duration) {
	p.reaperOn = true
	if p.reaper == nil {
		p.reaper = time.AfterFunc(d, p.reap)
	} else {
		p.reaper.Reset(d)
	}
}

// reap is the reaper's callback: it closes the idle connections past the
// idle timeout and re-arms for the next one to reach it.
func (p *h1Pool) reap() {
	p.mu.Lock()
	p.reaperOn = false
	if p.closed || p.idleTimeout <= 0 {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	var expired []*h1Conn
	var next time.Duration
	live := p.idle[:0]
	for _, c := range p.idle {
		if left := p.idleTimeout - now.Sub(c.idleSince); left > 0 {
			live = append(live, c)
			if next == 0 || left < next {
				next = left
			}
			continue
		}
		expired = append(expired, c)
	}
	clear(p.idle[len(live):])
	p.idle = live
	if len(live) > 0 {
		p.armReaperLocked(next)
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

// idleConns returns the number of idle connections.
func (p *h1Pool) idleConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// put returns c to the pool after an exchange: to the oldest pending
// request if one waits, else idle. It closes c when the pool is closed or
// the connection served its max_requests_per_connection.
func (p *h1Pool) put(c *h1Conn, opts xds.HTTPOptions) {
	if c.single || opts.MaxRequestsPerConnection > 0 && c.requests >= opts.MaxRequestsPerConnection || c.expired(opts) {
		c.close()
		return
	}
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	if len(p.waiters) > 0 {
		w := p.popWaiterLocked()
		p.mu.Unlock()
		w.ch <- c
		return
	}
	p.idle = append(p.idle, c)
	p.idleTimeout = opts.IdleTimeout
	if !p.reaperOn && p.idleTimeout > 0 {
		p.armReaperLocked(p.idleTimeout)
	}
	p.mu.Unlock()
}

// expired reports whether c has served its max_connection_duration: it
// then takes no new request and closes (Envoy drains it; an idle one
// closes when the pool next looks at it).
func (c *h1Conn) expired(opts xds.HTTPOptions) bool {
	return opts.MaxConnectionDuration > 0 && time.Since(c.born) >= opts.MaxConnectionDuration
}

func (p *h1Pool) popWaiterLocked() *h1Waiter {
	w := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	return w
}

// lost takes note that one of the pool's connections closed (or could not
// be opened): the oldest pending request may now open one.
func (p *h1Pool) lost() {
	p.mu.Lock()
	p.open--
	var w *h1Waiter
	if len(p.waiters) > 0 {
		w = p.popWaiterLocked()
	}
	p.mu.Unlock()
	if w != nil {
		w.ch <- nil
	}
}

// Close closes the idle connections, stops the reaper and wakes the
// pending requests, which then fail; connections in use close when their
// exchange ends, and no new one opens.
func (p *h1Pool) Close() error {
	p.mu.Lock()
	idle, waiters := p.idle, p.waiters
	p.idle, p.waiters = nil, nil
	p.closed = true
	if p.reaperOn {
		p.reaper.Stop()
		p.reaperOn = false
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	for _, w := range waiters {
		w.ch <- nil
	}
	return nil
}

func (c *h1Conn) close() {
	if c.gone.Swap(true) {
		return
	}
	c.rwc.Close()
	if c.release != nil {
		c.release()
		c.release = nil
	}
	c.pool.lost()
}

var errPoolClosed = status.New(status.ConnectFailure, errors.New("pool closed"))

// acquire returns a connection for the exchange, as Envoy's pool attaches
// a stream: an idle connection at once; else, as a pending request within
// max_pending_requests (overflow beyond), a new connection within
// max_connections (or past it when the pool has none), or else the next
// connection the pool frees. reused says the connection served before.
func (p *h1Pool) acquire(cs *Clusters, cl *xds.Cluster, x *exchange, opts xds.HTTPOptions) (c *h1Conn, reused bool, err error) {
	if err := x.ctx.Err(); err != nil {
		return nil, false, err // gone before a connection was chosen: none is taken or opened
	}
	for {
		p.mu.Lock()
		c, stale := p.popIdleLocked(opts, x.pick.tlsKey(cl))
		p.mu.Unlock()
		if stale != nil {
			stale.close()
			continue
		}
		if c != nil {
			return c, true, nil
		}
		break
	}
	var br *lb.Breakers
	if st := cs.LB.Cluster(cl.Name); st != nil {
		br = st.Breakers()
		release, ok := br.TryPending()
		if !ok {
			return nil, false, status.New(status.Overflow, errors.New("max_pending_requests reached"))
		}
		defer release()
	}
	var wait context.Context // made on the first wait
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, errPoolClosed
		}
		c, stale := p.popIdleLocked(opts, x.pick.tlsKey(cl))
		if stale != nil {
			p.mu.Unlock()
			stale.close()
			continue
		}
		if c != nil {
			p.mu.Unlock()
			return c, true, nil
		}
		var release func()
		dial := br == nil
		if !dial {
			release, dial = br.TryConnection()
			if !dial && p.open == 0 {
				release, dial = br.AddConnection(), true
			}
		}
		if dial {
			p.open++
			p.mu.Unlock()
			return p.dialFor(cs, cl, x, release, opts)
		}
		w := &h1Waiter{ch: make(chan *h1Conn, 1)}
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		if wait == nil {
			var cancel context.CancelFunc
			wait, cancel = x.ctx, func() {}
			if !x.deadline.IsZero() {
				wait, cancel = context.WithDeadline(x.ctx, x.deadline)
			}
			defer cancel()
		}
		select {
		case c := <-w.ch:
			if c != nil {
				return c, true, nil
			}
			continue // a connection closed: try again
		case <-wait.Done():
			p.mu.Lock()
			queued := slices.Contains(p.waiters, w)
			if queued {
				p.waiters = slices.DeleteFunc(p.waiters, func(o *h1Waiter) bool { return o == w })
			}
			p.mu.Unlock()
			if !queued {
				// Served as the wait ended: pass it on.
				if c := <-w.ch; c != nil {
					p.put(c, opts)
				} else {
					p.passOn()
				}
			}
			// A request that never reached the host says nothing of it.
			x.pick.done(lb.Canceled)
			return nil, false, wait.Err()
		}
	}
}

// h1Dial is a connection being opened for a request by a goroutine of
// Clusters (dialFor). The request waits for it; if the request leaves
// first, the dialler pools the connection.
type h1Dial struct {
	done     chan struct{} // closed when c and err are set
	c        *h1Conn
	err      error
	finished bool // c and err are set (p.mu)
	left     bool // the request stopped waiting (p.mu)
}

// dialFor opens a connection for x within the slot p.open++ (and release,
// its max_connections slot) already taken. The dial does not depend on
// the request: it runs on a goroutine of Clusters, bounded by the
// cluster's connect timeout and by Clusters.Close, and a request that
// leaves while it runs (its downstream gone, its deadline passed) leaves
// the connection to the pool, for the next request, rather than tearing it
// down: a client that cancels every request costs the endpoint at most
// the pool's connections. A connection of this request alone (a PROXY
// protocol header) or of a request that cannot be cancelled is dialled on
// the caller's goroutine.
func (p *h1Pool) dialFor(cs *Clusters, cl *xds.Cluster, x *exchange, release func(), opts xds.HTTPOptions) (*h1Conn, bool, error) {
	pp := proxyHeader(cl.ProxyProtocol, x.down)
	if pp != nil || x.ctx.Done() == nil && x.deadline.IsZero() {
		c, err := p.dial(x.ctx, cs, cl, &x.pick, release, pp)
		if err != nil {
			p.lost()
		}
		return c, false, err
	}
	d := &h1Dial{done: make(chan struct{})}
	pk := x.pick // read only by the dial: host, endpoint, SNI
	if !cs.goDial(func() { p.finishDial(cs, cl, &pk, release, opts, d) }) {
		if release != nil {
			release()
		}
		p.lost()
		return nil, false, errPoolClosed
	}
	wait, cancel := x.ctx, context.CancelFunc(nil)
	if !x.deadline.IsZero() {
		wait, cancel = context.WithDeadline(x.ctx, x.deadline)
		defer cancel()
	}
	select {
	case <-d.done:
		return d.c, false, d.err
	case <-wait.Done():
	}
	p.mu.Lock()
	finished := d.finished
	d.left = !finished
	p.mu.Unlock()
	if finished {
		<-d.done
		if d.c != nil {
			p.put(d.c, opts)
		}
	}
	x.pick.done(lb.Canceled)
	return nil, false, wait.Err()
}

// finishDial is the dial of dialFor, on its goroutine.
func (p *h1Pool) finishDial(cs *Clusters, cl *xds.Cluster, pk *pick, release func(), opts xds.HTTPOptions, d *h1Dial) {
	c, err := p.dial(cs.ctx, cs, cl, pk, release, nil)
	if err != nil {
		p.lost()
	}
	p.mu.Lock()
	d.c, d.err, d.finished = c, err, true
	left := d.left
	p.mu.Unlock()
	close(d.done)
	if left && c != nil {
		p.put(c, opts)
	}
}

// passOn gives the wake-up of a pending request that has left to the next
// one, if any.
func (p *h1Pool) passOn() {
	p.mu.Lock()
	var w *h1Waiter
	if len(p.waiters) > 0 {
		w = p.popWaiterLocked()
	}
	p.mu.Unlock()
	if w != nil {
		w.ch <- nil
	}
}

// dial opens a new connection holding release, its max_connections slot
// (nil: none), for its life; release is called if the dial fails. A
// connection that starts with the PROXY protocol header pp serves one
// exchange.
func (p *h1Pool) dial(ctx context.Context, cs *Clusters, cl *xds.Cluster, pk *pick, release func(), pp []byte) (*h1Conn, error) {
	rwc, err := cs.Dialer.dial(pk.dialContext(ctx), cl, pk.host, pk.ep, pp)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	return &h1Conn{pool: p, rwc: rwc, cc: http1.NewClientConn(rwc, http1.ClientConfig{}), release: release, born: time.Now(), single: pp != nil, tlsKey: pk.tlsKey(cl)}, nil
}

// roundTrip sends the exchange's request on a pooled or new connection
// and returns the response, its body streaming. The request takes its
// max_requests slot once it has a connection (Envoy's attach), so that
// pending requests do not count as requests. A connection that ends under
// the request before its response is a connection termination (UC),
// counted as Envoy counts it (countTerminated); on a reused connection,
// a replayable request whose failure may be the server's close of the
// connection while it was idle (mayResend) is sent again, once, on a new
// connection, as net/http's Transport does.
func (p *h1Pool) roundTrip(cs *Clusters, cl *xds.Cluster, x *exchange) (*l7.Response, error) {
	opts := cl.HTTPOrDefault()
	for attempt := 0; ; attempt++ {
		c, reused, err := p.acquire(cs, cl, x, opts)
		if err != nil {
			return nil, err
		}
		if attempt == 0 {
			if err := x.pick.takeRequest(cs, cl); err != nil {
				p.put(c, opts)
				return nil, err
			}
		}
		resp, err := c.exchange(x, opts)
		if err == nil {
			return resp, nil
		}
		err = x.classify(err)
		if status.KindOf(err) == status.ConnectionTermination {
			countTerminated(cl.Name)
			if reused && attempt == 0 && mayResend(x.req, err) {
				continue
			}
		}
		return nil, err
	}
}

// mayResend reports whether a request whose reused HTTP/1.1 connection
// ended under it (a connection termination) may be sent once more on a
// new connection, by net/http's rule (Transport's shouldRetryRequest): the
// request is replayable (replayable) and the failure can be the server's
// close of the connection while it was idle, racing the request: nothing
// of the response had come, and what ended was the connection to the
// server, not the HBONE connection carrying its tunnel (the server's
// close reaches the waypoint as the tunnel's end, never as its
// connection's). Any other request gets the connection termination (Envoy
// resends nothing itself; a route's retry_policy may retry it).
func mayResend(req *l7.Request, err error) bool {
	var ce *http1.ConnError
	return replayable(req) && errors.As(err, &ce) && ce.NoResponse && !hboneConnEnded(ce.Err)
}

// hboneConnEnded reports whether err, a stream's error, says the HTTP/2
// connection under it ended (for an HBONE tunnel: its connection to the
// ztunnel, not the tunnel): closed, broken, or ended for an error of
// either side.
func hboneConnEnded(err error) bool {
	var ce *http2.ConnError
	return h2ConnLost(err) || errors.As(err, &ce)
}

// replayable reports whether req may be sent twice, as net/http's
// Request.isReplayable says: it has no body, and its method is GET, HEAD,
// OPTIONS or TRACE or it carries an Idempotency-Key or X-Idempotency-Key
// header.
func replayable(req *l7.Request) bool {
	if req.Body != nil {
		return false
	}
	switch req.Method {
	case l7.MethodGet, l7.MethodHead, l7.MethodOptions, l7.MethodTrace:
		return true
	}
	return req.Header.Has("idempotency-key") || req.Header.Has("x-idempotency-key")
}

// bound arms the exchange's deadline and the downstream's cancellation:
// either closes the connection, which unblocks reads and writes.
func (c *h1Conn) bound(x *exchange) {
	c.armed, c.stopCtx, c.notifier = false, nil, nil
	if !x.deadline.IsZero() {
		d := time.Until(x.deadline)
		if c.timer == nil {
			c.timer = time.AfterFunc(d, c.expire)
		} else {
			c.timer.Reset(d)
		}
		c.armed = true
	}
	if x.ctx.Done() != nil {
		g := c.gen.Add(1)
		if n, ok := x.ctx.(filters.CancelNotifier); ok {
			c.notifier, c.notifyHandle = n, n.NotifyCancel(c, g)
			return
		}
		c.stopCtx = context.AfterFunc(x.ctx, func() { c.cancelled(g) })
	}
}

// StreamCancelled implements filters.CancelHandler: the hook of exchange
// g, registered with a filters.CancelNotifier.
func (c *h1Conn) StreamCancelled(g uint64) { c.cancelled(g) }

// cancelled is the downstream-cancellation hook of exchange g: it bounds
// the rest of the exchange by cancelDrainTimeout (drainT closes the
// connection then) instead of closing the connection at once, so that a
// request written whole whose response comes soon leaves its connection
// reusable. It runs on the goroutine context.AfterFunc starts.
func (c *h1Conn) cancelled(g uint64) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.gen.Load() != g || c.gone.Load() {
		return // that exchange is over
	}
	c.draining = true
	if c.drainT == nil {
		c.drainT = time.AfterFunc(cancelDrainTimeout, c.drainExpired)
	} else {
		c.drainT.Reset(cancelDrainTimeout)
	}
}

// drainExpired is drainT's callback: the exchange of a downstream that
// left did not end in time; the connection is closed, which unblocks its
// reads and writes.
func (c *h1Conn) drainExpired() {
	c.cmu.Lock()
	fire := c.draining
	if fire {
		c.draining, c.drainGone = false, true
	}
	c.cmu.Unlock()
	if fire {
		c.rwc.Close()
	}
}

func (c *h1Conn) expire() {
	c.fired.Store(true)
	c.rwc.Close()
}

// unbound disarms what bound armed; false when either went off (the
// connection is then closed and must not be reused).
func (c *h1Conn) unbound() bool {
	ok := true
	if c.armed {
		if !c.timer.Stop() {
			ok = false
		}
		c.armed = false
	}
	hooked, stopped := c.stopCtx != nil || c.notifier != nil, true
	switch {
	case c.stopCtx != nil:
		stopped = c.stopCtx()
	case c.notifier != nil:
		stopped = c.notifier.StopNotify(c.notifyHandle)
	}
	if hooked {
		if !stopped {
			// The hook started: a late one must do nothing (gen), an
			// armed drain is stopped, one that went off closed c.
			c.cmu.Lock()
			c.gen.Add(1)
			if c.draining {
				c.drainT.Stop()
				c.draining = false
			}
			if c.drainGone {
				ok = false
				c.drainGone = false
			}
			c.cmu.Unlock()
		}
		c.stopCtx, c.notifier = nil, nil
	}
	return ok && !c.fired.Load()
}

// exchange runs one request/response on c. On error c is closed.
func (c *h1Conn) exchange(x *exchange, opts xds.HTTPOptions) (*l7.Response, error) {
	if err := x.ctx.Err(); err != nil {
		// The downstream left before the request was written: the
		// connection is as it was, for the next request.
		c.pool.put(c, opts)
		return nil, status.New(status.DownstreamGone, err)
	}
	c.requests++
	c.bound(x)
	if err := c.cc.WriteRequest(x.req); err != nil {
		c.unbound()
		c.close()
		return nil, err
	}
	resp := &c.resp
	if err := c.cc.ReadResponse(x.req, resp); err != nil {
		c.unbound()
		c.close()
		var pe *http1.Error
		if errors.As(err, &pe) {
			return nil, status.New(status.UpstreamReset, err)
		}
		return nil, err
	}
	if resp.Status == 101 {
		// An upgrade: the connection leaves the pool and becomes the
		// upgraded byte stream, the response's Body.
		c.unbound()
		rw, buffered := c.cc.Hijack()
		resp.Body = &upgraded{c: c, r: replay.NewReader(append([]byte(nil), buffered...), rw), w: rw, pk: x.pick}
		return resp, nil
	}
	if err := x.ctx.Err(); err != nil {
		// The downstream left while the response came: drop it, bounded,
		// and keep the connection if that ended the response.
		ended := drainBody(resp.Body)
		if c.unbound() && ended && c.cc.Reusable() {
			c.pool.put(c, opts)
		} else {
			c.close()
		}
		return nil, status.New(status.DownstreamGone, err)
	}
	// The body always goes through c.body, even an empty one, so that the
	// connection returns to the pool only when the caller is done with the
	// response (Close), never while it still reads the headers.
	c.body = h1Body{c: c, r: resp.Body, pk: x.pick, opts: opts, status: resp.Status, ctx: x.ctx}
	resp.Body = &c.body
	return resp, nil
}

// upgraded is an upgraded upstream connection (after a 101): a byte stream
// both ways that the connection manager relays. Closing it closes the
// connection and reports the exchange.
type upgraded struct {
	c    *h1Conn
	r    io.Reader
	w    io.Writer
	pk   pick
	once sync.Once
}

func (u *upgraded) Read(p []byte) (int, error)  { return u.r.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.w.Write(p) }

// CloseWrite half-closes the upstream connection.
func (u *upgraded) CloseWrite() error { return u.c.rwc.CloseWrite() }

// Close closes the upstream connection.
func (u *upgraded) Close() error {
	u.once.Do(func() {
		u.c.close()
		u.pk.done(lb.Status(101))
	})
	return nil
}

// h1Body is a response body that returns its connection to the pool when
// it has been read to the end and closed, and reports the exchange to the
// balancer. It lives in its connection and is reset per exchange.
type h1Body struct {
	c      *h1Conn
	r      io.Reader // nil: no body
	pk     pick
	opts   xds.HTTPOptions
	status int
	ctx    context.Context // the exchange's: a body closed early after the downstream left is drained
	eof    bool
	closed bool
}

// drainBody reads r (nil: no body) to its end, up to cancelDrainBytes;
// false if it did not end there or failed. Reads are bounded in time by
// the exchange's drainT or deadline, which close the connection.
func drainBody(r io.Reader) bool {
	if r == nil {
		return true
	}
	n, err := io.CopyN(io.Discard, r, cancelDrainBytes+1)
	return err == io.EOF && n <= cancelDrainBytes
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.r == nil {
		b.eof = true
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		err = status.New(status.UpstreamReset, err)
	}
	return n, err
}

// Close ends the exchange: the connection goes back to the pool if the
// body was read to its end, nothing went off, and the connection may be
// reused.
func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.eof && b.ctx != nil && b.ctx.Err() != nil {
		// The downstream left mid-response: what remains is dropped,
		// bounded (cancelled), so that the connection may be reused.
		b.eof = drainBody(b.r)
	}
	c, pk, status := b.c, b.pk, b.status
	intact := c.unbound()
	// The exchange ends (its max_requests slot freed) before the connection goes to a
	// pending request, which takes that slot when it attaches.
	pk.done(lb.Status(status))
	if b.eof && intact && c.cc.Reusable() {
		c.pool.put(c, b.opts)
	} else {
		c.close()
	}
	return nil
}

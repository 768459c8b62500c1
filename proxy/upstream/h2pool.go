package upstream

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/internal/dialonce"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// h2Pool multiplexes requests to one endpoint of one cluster over HTTP/2
// connections: a stream goes on the first connection with a free slot (the
// peer's SETTINGS_MAX_CONCURRENT_STREAMS), and when every connection is
// full one new connection is dialed, one at a time (dialonce), as the
// HBONE pool does. The dial runs on a goroutine owned by Clusters (goDial),
// bounded by the cluster's connect timeout and cancelled by
// Clusters.Close. A connection closes itself after the cluster's idle
// timeout without streams (http2.Config.IdleTimeout); the pool drops it
// when it next looks, or when it closes. Owned by its endpoint (or, for a
// PROXY protocol cluster, by its one exchange). Safe for concurrent use.
type h2Pool struct {
	mu     sync.Mutex
	conns  []*h2Conn
	dial   dialonce.Slot // the dial in flight, if any
	closed bool
	// pp is the PROXY protocol header a connection starts with, for the
	// pool of one request of a cluster that sends one (see proxyproto.go).
	pp []byte
}

type h2Conn struct {
	cc      *http2.ClientConn
	release func() // the max_connections slot
	born    time.Time
	tlsKey  tlsKey // the cluster's TLSKey (and the request's host) when it was dialled
	cluster string // the cluster's name, for its counters
	once    sync.Once
	// drained is set when the pool's Close drained the connection: a
	// stream refused by it afterwards was never sent.
	drained atomic.Bool
	// terminated is set by the first stream that failed with the
	// connection's end, which counts the connection (countTerminated).
	terminated atomic.Bool
}

// room reports whether c has fewer than max streams open or reserved.
func (c *h2Conn) room(max int) bool {
	st := c.cc.State()
	return st.ActiveStreams+st.Reserved < max
}

func (c *h2Conn) close() {
	c.cc.Close()
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
}

// reserve returns a connection with a stream slot reserved for the caller.
func (p *h2Pool) reserve(ctx context.Context, cs *Clusters, cl *xds.Cluster, pk *pick) (*h2Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		live := p.conns[:0]
		var picked *h2Conn
		var dead []*h2Conn
		maxAge := cl.HTTPOrDefault().MaxConnectionDuration
		maxStreams := int(cl.HTTP2OrDefault().MaxConcurrentStreams)
		for _, c := range p.conns {
			// Past max_connection_duration a connection takes no new
			// stream and closes once its streams are done (drained).
			// So does one dialled with TLS the cluster no longer has.
			draining := maxAge > 0 && time.Since(c.born) >= maxAge || c.tlsKey != pk.tlsKey(cl)
			// The cluster's max_concurrent_streams caps a connection's
			// streams as well as the peer's SETTINGS, as in Envoy. Only
			// the pool reserves streams, under p.mu: the count cannot
			// grow between the look and the reservation.
			if picked == nil && !draining && c.room(maxStreams) && c.cc.TryReserve() {
				picked = c
				live = append(live, c)
				continue
			}
			if st := c.cc.State(); st.Closed || ((st.GoAway || draining) && st.ActiveStreams == 0) {
				dead = append(dead, c)
				continue
			}
			live = append(live, c)
		}
		clear(p.conns[len(live):])
		p.conns = live
		if picked != nil {
			p.mu.Unlock()
			closeH2(dead)
			return picked, nil
		}
		w, lead := p.dial.Join()
		if lead && !cs.goDial(func() { p.dialOne(cs, cl, pk, w) }) {
			p.dial.Finish(w, errPoolClosed)
		}
		p.mu.Unlock()
		closeH2(dead)
		if err := w.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

func closeH2(cs []*h2Conn) {
	for _, c := range cs {
		c.close()
	}
}

// dialOne opens a connection for the pool and wakes the waiters. It runs
// on a goroutine of Clusters (goDial), bounded by the cluster's connect
// timeout (in Dial) and the HTTP/2 handshake.
func (p *h2Pool) dialOne(cs *Clusters, cl *xds.Cluster, pk *pick, w *dialonce.Dial) {
	c, err := p.newConn(cs, cl, pk)
	p.mu.Lock()
	if err == nil && p.closed {
		c.close()
		err = errPoolClosed // a connect failure: nothing was sent, retry elsewhere
	}
	if err == nil {
		p.conns = append(p.conns, c)
	}
	p.dial.Finish(w, err)
	p.mu.Unlock()
}

func (p *h2Pool) newConn(cs *Clusters, cl *xds.Cluster, pk *pick) (*h2Conn, error) {
	var release func()
	if st := cs.LB.Cluster(cl.Name); st != nil {
		var ok bool
		if release, ok = st.Breakers().TryConnection(); !ok {
			return nil, status.New(status.Overflow, errors.New("max_connections reached"))
		}
	}
	rwc, err := cs.Dialer.dial(pk.dialContext(cs.ctx), cl, pk.host, pk.ep, p.pp)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	opts := cl.HTTP2OrDefault()
	cfg := http2.Config{
		InitialStreamWindow: int32(min(opts.InitialStreamWindowSize, 1<<31-1)),
		InitialConnWindow:   int32(min(opts.InitialConnectionWindowSize, 1<<31-1)),
		IdleTimeout:         cl.HTTPOrDefault().IdleTimeout,
	}
	cc, err := http2.NewClientConn(rwc, cfg)
	if err != nil {
		rwc.Close()
		if release != nil {
			release()
		}
		return nil, status.New(status.ConnectFailure, err)
	}
	return &h2Conn{cc: cc, release: release, born: time.Now(), tlsKey: pk.tlsKey(cl), cluster: cl.Name}, nil
}

func (p *h2Pool) roundTrip(cs *Clusters, cl *xds.Cluster, x *exchange) (*l7.Response, error) {
	ctx, cancel := x.ctx, context.CancelFunc(nil)
	if !x.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, x.deadline)
	}
	c, err := p.reserve(ctx, cs, cl, &x.pick)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		return nil, err
	}
	return p.send(ctx, cancel, c, x)
}

// send runs the exchange on c, where a stream slot is reserved for it;
// cancel (nil: none) ends ctx's deadline once the exchange is done.
func (p *h2Pool) send(ctx context.Context, cancel context.CancelFunc, c *h2Conn, x *exchange) (*l7.Response, error) {
	resp, err := c.cc.RoundTrip(ctx, x.req)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		if c.drained.Load() && errors.Is(err, http2.ErrClosed) {
			// The endpoint left between the reservation and the stream:
			// Drain refuses new streams only, so this one never started
			// and may go to another host (refused-stream).
			return nil, status.New(status.RefusedStream, err)
		}
		err = h2Error(err)
		c.count(err)
		return nil, err
	}
	if resp.Body == nil {
		if cancel != nil {
			cancel()
		}
		if p.pp != nil {
			p.Close()
		}
		x.pick.done(lb.Status(resp.Status))
		return resp, nil
	}
	b := &h2Body{r: resp.Body, pk: x.pick, status: resp.Status, cancel: cancel}
	if p.pp != nil {
		b.own = p
	}
	resp.Body = b
	return resp, nil
}

// h2Error classifies a stream's failure: the end of its connection a
// connection termination (UC), whatever ended it: looked at first, as a
// broken transport may be an HBONE tunnel's reset stream; a refused
// stream (REFUSED_STREAM, or above a GOAWAY's last stream id: safe to
// retry anywhere); else a reset of the stream (UR).
func h2Error(err error) error {
	if status.KindOf(err) != status.Unknown {
		return err
	}
	if h2ConnLost(err) {
		return status.New(status.ConnectionTermination, err)
	}
	var se *http2.StreamError
	if errors.As(err, &se) && se.Remote && se.Code == http2.ErrCodeRefusedStream {
		return status.New(status.RefusedStream, err)
	}
	var ge *http2.GoAwayError
	if errors.As(err, &ge) {
		return status.New(status.RefusedStream, err)
	}
	return status.New(status.UpstreamReset, err)
}

// count counts a stream's failure err (classified by h2Error) as Envoy's
// HTTP/2 pool does: a connection termination per stream
// (upstream_rq_pending_failure_eject) and, for the first of the
// connection's streams, per connection (countTerminated); a stream the
// upstream reset (RST_STREAM but REFUSED_STREAM), upstream_rq_rx_reset.
func (c *h2Conn) count(err error) {
	switch status.KindOf(err) {
	case status.ConnectionTermination:
		metrics.Cluster(c.cluster).PendingFailureEject.Inc()
		if c.terminated.CompareAndSwap(false, true) {
			countTerminated(c.cluster)
		}
	case status.UpstreamReset:
		if se, ok := errors.AsType[*http2.StreamError](err); ok && se.Remote {
			metrics.Cluster(c.cluster).RxReset.Inc()
		}
	}
}

// h2Body reports the exchange to the balancer when the response ends.
type h2Body struct {
	r      io.Reader
	pk     pick
	status int
	cancel context.CancelFunc // the deadline's, if any
	own    *h2Pool            // a pool of this exchange alone, closed with it; nil if none
	once   sync.Once
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = h2Error(err)
	}
	return n, err
}

// TryRead implements l7.TryReader.
func (b *h2Body) TryRead(p []byte) (int, error) {
	n, err := l7.TryRead(b.r, p)
	if err != nil && err != io.EOF {
		err = h2Error(err)
	}
	return n, err
}

// Close ends the stream (RST_STREAM if it is not done) and reports it.
func (b *h2Body) Close() error {
	if c, ok := b.r.(io.Closer); ok {
		c.Close()
	}
	b.once.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		if b.own != nil {
			b.own.Close()
		}
		b.pk.done(lb.Status(b.status))
	})
	return nil
}

// Close closes the pool: idle connections close, connections with
// streams drain (their streams finish, then they close themselves), and
// nothing new opens. Each connection's max_connections slot is freed now.
func (p *h2Pool) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range conns {
		if st := c.cc.State(); st.ActiveStreams+st.Reserved == 0 {
			c.close()
			continue
		}
		c.drained.Store(true)
		c.cc.Drain()
		c.once.Do(func() {
			if c.release != nil {
				c.release()
			}
		})
	}
	return nil
}

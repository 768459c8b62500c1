package dubboconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// Defaults of UpstreamConfig.
const (
	// DefaultMaxCallsPerConn bounds the calls in flight on one upstream
	// connection; past it the pool opens another (within the cluster's
	// max_connections).
	DefaultMaxCallsPerConn = 1024
	// DefaultHeartbeatInterval is Dubbo's: a connection that has read
	// nothing for this long sends a heartbeat, and one that has read
	// nothing for three times as long is closed.
	DefaultHeartbeatInterval = 60 * time.Second
	// DefaultUpstreamIdleTimeout closes a connection that has carried no
	// call for this long (Envoy's upstream idle timeout default).
	DefaultUpstreamIdleTimeout = time.Hour
)

// UpstreamConfig tunes the upstream connections. Zero fields take the
// defaults.
type UpstreamConfig struct {
	MaxCallsPerConn   int
	HeartbeatInterval time.Duration
	IdleTimeout       time.Duration
	// MaxBodyBytes bounds a response's body; default 8 MiB. A response
	// over it is answered to its caller as a bad response (50).
	MaxBodyBytes int
}

func (c UpstreamConfig) withDefaults() UpstreamConfig {
	if c.MaxCallsPerConn <= 0 {
		c.MaxCallsPerConn = DefaultMaxCallsPerConn
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultUpstreamIdleTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = dubbo.DefaultMaxBodyBytes
	}
	return c
}

// Upstreams are the Dubbo connections to the endpoints of every cluster,
// shared by all downstream connections: per (cluster, endpoint) a pool of
// multiplexed connections, over HBONE or plain TCP as the cluster says
// (proxy/upstream's Dialer), on which the pool gives each call a request
// id of its own and maps the answer back. Heartbeats are answered and
// sent on each; a provider's readonly event keeps new calls away from it.
// Safe for concurrent use; Close ends every connection and waits for
// their goroutines.
type Upstreams struct {
	clusters *upstream.Clusters
	log      *slog.Logger
	cfg      UpstreamConfig

	pools  sync.Map // poolKey -> *pool; a pool leaves it when its last connection closes (pool.retire)
	wg     sync.WaitGroup
	closed atomic.Bool
}

// NewUpstreams returns the pools of Dubbo connections over clusters'
// balancers and dialer.
func NewUpstreams(clusters *upstream.Clusters, cfg UpstreamConfig, log *slog.Logger) *Upstreams {
	if log == nil {
		log = slog.Default()
	}
	return &Upstreams{clusters: clusters, cfg: cfg.withDefaults(), log: log}
}

// Close closes every connection (calls in flight fail with an upstream
// reset) and waits for their goroutines. Calls after Close fail.
func (u *Upstreams) Close() {
	u.closed.Store(true)
	u.pools.Range(func(k, v any) bool {
		v.(*pool).close()
		return true
	})
	u.wg.Wait()
}

type poolKey struct {
	cluster string
	addr    netip.AddrPort
}

func (u *Upstreams) pool(cluster string, addr netip.AddrPort) *pool {
	k := poolKey{cluster, addr}
	if v, ok := u.pools.Load(k); ok {
		return v.(*pool)
	}
	v, _ := u.pools.LoadOrStore(k, &pool{u: u, key: k})
	return v.(*pool)
}

// pool is the connections to one endpoint of one cluster.
type pool struct {
	u   *Upstreams
	key poolKey

	mu       sync.Mutex
	conns    []*upConn
	dial     *dialWait
	readonly bool // the provider said readonly; cleared by "writeable" or when no connection is left
	closed   bool
	// retired: the pool had no connection and no dial left and is no
	// longer in Upstreams.pools; a caller that still holds it asks for
	// the key's pool again.
	retired bool
}

// dialWait lets callers wait for the one dial in flight.
type dialWait struct {
	done chan struct{}
	err  error
}

// isReadonly reports whether the provider asked for no new calls.
func (p *pool) isReadonly() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readonly
}

// reserve returns a connection with room for a call, dialing one (one at a
// time per pool) when none has.
func (p *pool) reserve(ctx context.Context, cl *xds.Cluster, h *lb.Host) (*upConn, error) {
	for {
		p.mu.Lock()
		if p.retired {
			p.mu.Unlock()
			return p.u.pool(p.key.cluster, p.key.addr).reserve(ctx, cl, h)
		}
		if p.closed || p.u.closed.Load() {
			p.mu.Unlock()
			return nil, status.New(status.ConnectFailure, errors.New("dubbo upstream pool closed"))
		}
		for _, c := range p.conns {
			if c.tryReserve(p.u.cfg.MaxCallsPerConn) {
				p.mu.Unlock()
				return c, nil
			}
		}
		w := p.dial
		if w == nil {
			w = &dialWait{done: make(chan struct{})}
			p.dial = w
			p.u.wg.Add(1)
			go func() {
				defer p.u.wg.Done()
				p.dialOne(cl, h, w)
			}()
		}
		p.mu.Unlock()
		select {
		case <-w.done:
			if w.err != nil {
				return nil, w.err
			}
		case <-ctx.Done():
			return nil, status.New(status.ConnectFailure, ctx.Err())
		}
	}
}

// dialOne opens a connection for the pool, bounded by the cluster's
// connect timeout, and wakes the waiters.
func (p *pool) dialOne(cl *xds.Cluster, h *lb.Host, w *dialWait) {
	c, err := p.newConn(cl, h)
	p.mu.Lock()
	if err == nil && (p.closed || p.u.closed.Load()) {
		p.mu.Unlock()
		c.close(errors.New("dubbo upstream pool closed"))
		p.mu.Lock()
		err = status.New(status.ConnectFailure, errors.New("dubbo upstream pool closed"))
	}
	if err == nil {
		p.conns = append(p.conns, c)
		c.start()
	}
	w.err = err
	p.dial = nil
	close(w.done)
	p.retireIfEmpty()
	p.mu.Unlock()
}

// retireIfEmpty takes a pool with no connection and no dial in flight out
// of Upstreams.pools, so that endpoints that come and go leave nothing
// behind. Called with p.mu held.
func (p *pool) retireIfEmpty() {
	if len(p.conns) > 0 || p.dial != nil || p.retired {
		return
	}
	p.retired = true
	p.u.pools.CompareAndDelete(p.key, p)
}

func (p *pool) newConn(cl *xds.Cluster, h *lb.Host) (*upConn, error) {
	var release func()
	if st := p.u.clusters.LB.Cluster(cl.Name); st != nil {
		var ok bool
		if release, ok = st.Breakers().TryConnection(); !ok {
			return nil, status.New(status.Overflow, fmt.Errorf("cluster %q: max_connections reached", cl.Name))
		}
	}
	rwc, err := p.u.clusters.Dialer.DialHost(context.Background(), cl, h)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	c := &upConn{p: p, rwc: rwc, release: release, pending: map[uint64]*pendingCall{}}
	c.w = newFrameWriter(rwc)
	c.lastRead.Store(time.Now().UnixNano())
	c.lastCall.Store(time.Now().UnixNano())
	return c, nil
}

// remove drops c from the pool; with no connection left, the provider's
// readonly state is forgotten (a new connection is to a new process).
func (p *pool) remove(c *upConn) {
	p.mu.Lock()
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if len(p.conns) == 0 {
		p.readonly = false
	}
	p.retireIfEmpty()
	p.mu.Unlock()
}

func (p *pool) setReadonly(v bool) {
	p.mu.Lock()
	p.readonly = v
	p.mu.Unlock()
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	conns := append([]*upConn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		c.close(errors.New("dubbo upstream pool closed"))
	}
}

// pendingCall is a call waiting for its answer on an upstream connection.
// The connection's reader delivers exactly once per registration: frame
// or err, then a value on done.
type pendingCall struct {
	done  chan struct{} // buffered, 1
	frame *dubbo.Frame
	err   error
}

// upConn is one multiplexed Dubbo connection to a provider. Its reader
// goroutine (owned by the Upstreams' WaitGroup) reads answers and events
// until the connection ends.
type upConn struct {
	p       *pool
	rwc     relay.Conn
	w       *frameWriter
	release func() // the max_connections slot

	lastRead atomic.Int64 // unix nanoseconds
	lastCall atomic.Int64

	mu       sync.Mutex
	pending  map[uint64]*pendingCall
	reserved int // calls reserved or pending
	nextID   uint64
	closed   bool
	timer    *time.Timer // heartbeat and idle checks
}

// tryReserve takes room for one call unless the connection is full or
// closed. Called with the pool's lock held.
func (c *upConn) tryReserve(limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.reserved >= limit {
		return false
	}
	c.reserved++
	return true
}

// unreserve gives back a reservation that was not registered.
func (c *upConn) unreserve() {
	c.mu.Lock()
	c.reserved--
	c.mu.Unlock()
}

// register gives a reserved call its request id on this connection and
// records it as pending (nil pc: a one-way call, which gets no answer).
func (c *upConn) register(pc *pendingCall) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.reserved--
		return 0, status.New(status.RefusedStream, errors.New("the upstream connection closed before the call was sent"))
	}
	c.nextID++
	id := c.nextID
	if pc != nil {
		c.pending[id] = pc
	} else {
		c.reserved--
	}
	c.lastCall.Store(time.Now().UnixNano())
	return id, nil
}

// forget removes a pending call that gave up waiting; false when the
// reader has taken it and is delivering (the caller must then receive).
func (c *upConn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return false
	}
	delete(c.pending, id)
	c.reserved--
	return true
}

// take removes and returns the pending call of id, or nil.
func (c *upConn) take(id uint64) *pendingCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc := c.pending[id]
	if pc != nil {
		delete(c.pending, id)
		c.reserved--
	}
	return pc
}

// heartbeatID allocates an id for a heartbeat of ours.
func (c *upConn) heartbeatID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

// start runs the reader and arms the heartbeat timer.
func (c *upConn) start() {
	c.p.u.wg.Add(1)
	go func() {
		defer c.p.u.wg.Done()
		c.readLoop()
	}()
	c.mu.Lock()
	c.timer = time.AfterFunc(c.p.u.cfg.HeartbeatInterval, c.tick)
	c.mu.Unlock()
}

// tick sends a heartbeat on a connection quiet for a heartbeat interval,
// and closes one quiet for three, or idle (no call in flight and none for
// the idle timeout).
func (c *upConn) tick() {
	cfg := &c.p.u.cfg
	now := time.Now()
	quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
	c.mu.Lock()
	idle := len(c.pending) == 0 && c.reserved == 0 && now.Sub(time.Unix(0, c.lastCall.Load())) > cfg.IdleTimeout
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return
	case quiet > 3*cfg.HeartbeatInterval:
		c.close(errors.New("no heartbeat from the provider"))
		return
	case idle:
		c.close(errors.New("idle"))
		return
	case quiet >= cfg.HeartbeatInterval:
		c.w.write(dubbo.AppendHeartbeatRequest(nil, c.heartbeatID()))
	}
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(cfg.HeartbeatInterval)
	}
	c.mu.Unlock()
}

// readLoop reads the provider's frames until the connection ends, then
// fails the calls still pending.
func (c *upConn) readLoop() {
	r := dubbo.NewReader(c.rwc, dubbo.ReaderConfig{MaxBodyBytes: c.p.u.cfg.MaxBodyBytes})
	defer r.Close()
	var err error
	for {
		var f *dubbo.Frame
		f, err = r.Next()
		if err != nil {
			var fe *dubbo.FrameError
			if errors.As(err, &fe) && errors.Is(err, dubbo.ErrTooLarge) && !fe.Header.Request {
				if pc := c.take(fe.Header.ID); pc != nil {
					pc.err = status.New(status.UpstreamReset, fmt.Errorf("dubbo: the provider's answer: %w", err))
					pc.done <- struct{}{}
				}
				continue
			}
			break
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.handle(f)
	}
	if err == io.EOF {
		err = errors.New("the provider closed the connection")
	}
	c.close(err)
}

// handle dispatches one frame from the provider.
func (c *upConn) handle(f *dubbo.Frame) {
	h := f.Header
	switch {
	case h.Event && h.Request:
		switch dubbo.DecodeEvent(h.Serialization, f.Body()) {
		case dubbo.EventHeartbeat:
			if h.TwoWay {
				c.w.write(dubbo.AppendHeartbeatResponse(nil, h.ID))
			}
		case dubbo.EventReadonly:
			c.p.setReadonly(true)
			c.p.u.log.Info("dubbo: provider is read-only: no new calls go to it", "cluster", c.p.key.cluster, "endpoint", c.p.key.addr)
		case dubbo.EventWriteable:
			c.p.setReadonly(false)
		}
		f.Release()
	case h.Event:
		f.Release() // the answer to a heartbeat of ours
	case h.Request:
		// A callback from the provider to its consumer: the waypoint does
		// not carry requests that way.
		if h.TwoWay {
			c.w.write(dubbo.AppendErrorResponse(nil, h.ID, dubbo.StatusBadRequest,
				"waypoint: calls from a provider to its consumer (callbacks) are not supported"))
		}
		f.Release()
	default:
		pc := c.take(h.ID)
		if pc == nil {
			f.Release() // the call gave up waiting
			return
		}
		pc.frame = f
		pc.done <- struct{}{}
	}
}

// close ends the connection: no new call, every pending call fails with
// an upstream reset (it was sent and may have run), the pool forgets it.
func (c *upConn) close(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	pending := c.pending
	c.pending = map[uint64]*pendingCall{}
	c.reserved -= len(pending)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.w.fail(errors.New("the upstream connection is closed"))
	c.rwc.Close() // an HBONE stream not ended both ways is reset
	c.p.remove(c)
	if c.release != nil {
		c.release()
	}
	err := status.New(status.UpstreamReset, fmt.Errorf("dubbo: upstream connection to %s closed: %v", c.p.key.addr, cause))
	for _, pc := range pending {
		pc.err = err
		pc.done <- struct{}{}
	}
}

// inFlight returns the calls in flight on the pool's connections.
func (p *pool) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		c.mu.Lock()
		n += len(c.pending)
		c.mu.Unlock()
	}
	return n
}

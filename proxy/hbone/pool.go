package hbone

// The pool's invariants, after ztunnel's pool.rs:
//
//  1. Connections are keyed by (peer address, expected peer identity). A
//     stream is only ever opened on a connection whose key equals the one it
//     asked for, so a connection verified for one identity never carries a
//     stream meant for another.
//  2. A connection carries at most min(MaxStreamsPerConn, the peer's
//     SETTINGS_MAX_CONCURRENT_STREAMS) streams at once. A stream slot is
//     reserved under the pool lock before the stream is opened and released
//     when the stream is closed.
//  3. Per key, at most one new connection is being dialed at any time. When
//     every connection of a key is full, callers wait for that one dial; it
//     ends in a connection they all try, or in an error they all receive. A
//     burst of N streams therefore opens ceil(N/limit) connections, one after
//     the other, never N.
//  4. A connection that is closed, or going away (GOAWAY), takes no new
//     streams; streams already on it finish there. Closed connections are
//     dropped from the pool when next seen, and idle ones close themselves
//     after IdleTimeout.
//  5. Every goroutine the pool starts (dials, and through each connection
//     the read loop of protocols/http2's ClientConn with the goroutines it
//     owns) ends by Close, which closes every connection.
//  6. A key lives while someone holds it (Hold: proxy/upstream holds one per
//     endpoint of a cluster, so a key shared by several clusters lives
//     while any of them has the endpoint). When the last holder releases
//     it the key is forgotten at once: idle connections close, busy ones
//     drain (invariant 4) and close when their last stream ends, and a
//     dial in flight closes what it opens. A key that nobody holds (a bare
//     Connect) is forgotten by the sweep, every IdleTimeout, once its
//     connections have closed. So the pool's state is bounded by the peers
//     in use, not by every peer ever seen.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/internal/dialonce"
)

// Defaults of PoolConfig.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultPoolIdleTimeout   = 5 * time.Minute
	DefaultMaxStreamsPerConn = 100
)

// PoolConfig configures a Pool. Zero values take the defaults.
type PoolConfig struct {
	// Dial opens the TCP connection; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds the dial, the TLS handshake and the wait for
	// the CONNECT response when the caller's context has no earlier
	// deadline; default 10 s.
	ConnectTimeout time.Duration
	// MaxStreamsPerConn caps streams per connection on our side, below the
	// peer's own limit; default 100.
	MaxStreamsPerConn int32
	// IdleTimeout closes a connection with no stream for this long;
	// default 5 minutes.
	IdleTimeout       time.Duration
	KeepAliveInterval time.Duration // PING after this long without a frame; default 10 s
	KeepAliveTimeout  time.Duration // close when a PING is not answered in this; default 20 s
	StreamWindow      int32         // per-stream receive window; default 4 MiB
	ConnWindow        int32         // per-connection receive window; default 16 MiB
	Logger            *slog.Logger  // default slog.Default()
}

// Dest is where to open a stream and whom to expect there.
type Dest struct {
	// Addr is the HBONE peer, podIP:15008.
	Addr netip.AddrPort
	// Authority is the :authority of the CONNECT, the pod's ip:port.
	Authority string
	// PeerKey is a canonical form of the identity expected at Addr. Streams
	// share a connection only when Addr and PeerKey are equal.
	PeerKey string
	// TLS is the client configuration for a new connection; it must verify
	// the identity PeerKey stands for. Used only when a connection is dialed.
	TLS *tls.Config
	// Header holds extra CONNECT fields (lower-case); may be nil.
	Header *l7.Header
}

// ConnectError is returned when the peer answered the CONNECT with a status
// other than 200.
type ConnectError struct {
	Authority string
	Status    int
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("hbone: CONNECT %s: peer answered %d %s", e.Authority, e.Status, http.StatusText(e.Status))
}

// Pool opens HBONE streams over pooled connections, keyed by (peer
// address, expected identity); the invariants above say how. Safe for
// concurrent use.
//
// Goroutines: the dials (one per key at a time), the read loop of each
// connection, and the sweep (a timer callback, armed while keys that
// nobody holds or draining connections exist); all owned by the pool and
// ended by Close.
type Pool struct {
	cfg PoolConfig
	log *slog.Logger
	h2  http2.Config
	// ctx is cancelled by Close; it bounds every dial.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // dial goroutines and sweep callbacks

	mu      sync.Mutex // guards the fields below
	keys    map[poolKey]*keyState
	retired []*poolConn // connections of forgotten keys, draining
	sweep   *time.Timer // armed while sweeping may find something; nil before first use
	sweepOn bool        // sweep is armed
	closed  bool
}

type poolKey struct {
	addr netip.AddrPort
	peer string
}

// keyState is the pool's state for one key. Guarded by Pool.mu.
type keyState struct {
	conns  []*poolConn
	dial   dialonce.Slot // the dial in flight, if any
	dialed int           // connections opened over the key's life, for stats
	holds  int           // Hold calls not yet released
}

// poolConn is one pooled connection. active counts our streams on it.
type poolConn struct {
	cc     *http2.ClientConn
	active atomic.Int32
}

// NewPool returns an empty pool.
func NewPool(cfg PoolConfig) *Pool {
	setDefault(&cfg.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&cfg.MaxStreamsPerConn, DefaultMaxStreamsPerConn)
	setDefault(&cfg.IdleTimeout, DefaultPoolIdleTimeout)
	setDefault(&cfg.KeepAliveInterval, DefaultKeepAliveInterval)
	setDefault(&cfg.KeepAliveTimeout, DefaultKeepAliveTimeout)
	setDefault(&cfg.StreamWindow, DefaultStreamWindow)
	setDefault(&cfg.ConnWindow, DefaultConnWindow)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	h2 := http2.Config{
		InitialStreamWindow: cfg.StreamWindow,
		InitialConnWindow:   cfg.ConnWindow,
		IdleTimeout:         cfg.IdleTimeout,
		KeepAliveInterval:   cfg.KeepAliveInterval,
		KeepAliveTimeout:    cfg.KeepAliveTimeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, log: cfg.Logger, h2: h2, ctx: ctx, cancel: cancel, keys: map[poolKey]*keyState{}}
}

// ErrPoolClosed is returned by Connect after Close.
var ErrPoolClosed = errors.New("hbone: pool closed")

// errReleased fails the callers waiting for a dial whose key was
// forgotten (its last holder released it) while the dial was in flight.
var errReleased = errors.New("hbone: peer released while dialling")

// Hold makes the caller a holder of the key of d.Addr and d.PeerKey (as
// Connect would use it) and returns the release of that hold, to be
// called once (later calls do nothing). The key, its connections and its
// dial live while it has holders; at the last release they go at once
// (invariant 6): streams in flight finish, nothing new opens. Connect
// works without a hold; holding is for callers whose peers come and go,
// so that a peer that left leaves nothing behind.
func (p *Pool) Hold(d Dest) (release func()) {
	key := poolKey{d.Addr, d.PeerKey}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return func() {}
	}
	ks := p.keys[key]
	if ks == nil {
		ks = &keyState{}
		p.keys[key] = ks
	}
	ks.holds++
	var once sync.Once
	return func() { once.Do(func() { p.release(key, ks) }) }
}

// release drops one hold of ks and forgets the key with its last.
func (p *Pool) release(key poolKey, ks *keyState) {
	p.mu.Lock()
	if p.closed || p.keys[key] != ks {
		p.mu.Unlock()
		return
	}
	ks.holds--
	if ks.holds > 0 {
		p.mu.Unlock()
		return
	}
	delete(p.keys, key)
	// Connections retired before, whose streams have ended since, go now:
	// under churn the list then holds only what still drains.
	p.retired = slices.DeleteFunc(p.retired, func(pc *poolConn) bool { return pc.cc.State().Closed })
	var idle []*poolConn
	for _, pc := range ks.conns {
		if pc.active.Load() == 0 {
			idle = append(idle, pc)
		} else {
			// Drain, not Close: its streams finish. It stays known to
			// the pool, so that Close still ends it.
			pc.cc.Drain()
			p.retired = append(p.retired, pc)
			p.armSweepLocked()
		}
	}
	ks.conns = nil
	p.mu.Unlock()
	closeAll(idle)
}

// armSweepLocked arms the sweep unless it is armed. p.mu is held.
func (p *Pool) armSweepLocked() {
	if p.sweepOn || p.closed {
		return
	}
	p.sweepOn = true
	p.wg.Add(1)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.cfg.IdleTimeout, p.sweepKeys)
	} else {
		p.sweep.Reset(p.cfg.IdleTimeout)
	}
}

// sweepKeys is the sweep's callback: it forgets the keys that nobody
// holds and that have no dial in flight and no open connection, drops
// closed connections, and re-arms while there is more to sweep later.
func (p *Pool) sweepKeys() {
	defer p.wg.Done()
	p.mu.Lock()
	p.sweepOn = false
	if p.closed {
		p.mu.Unlock()
		return
	}
	again := p.sweepLocked()
	if again {
		p.armSweepLocked()
	}
	p.mu.Unlock()
}

// sweepLocked is one sweep; it reports whether unheld keys or draining
// connections remain. p.mu is held.
func (p *Pool) sweepLocked() (again bool) {
	p.retired = slices.DeleteFunc(p.retired, func(pc *poolConn) bool { return pc.cc.State().Closed })
	again = len(p.retired) > 0
	for key, ks := range p.keys {
		if ks.holds > 0 {
			continue
		}
		ks.conns = slices.DeleteFunc(ks.conns, func(pc *poolConn) bool { return pc.cc.State().Closed })
		if len(ks.conns) == 0 && !ks.dial.Busy() {
			delete(p.keys, key)
			continue
		}
		again = true
	}
	return again
}

// Connect opens a CONNECT stream to d and returns it once the peer answered
// 200. A failure before the peer answered is retried once on another
// connection, since no byte of the tunnelled stream has been sent yet.
func (p *Pool) Connect(ctx context.Context, d Dest) (*ClientStream, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var pc *poolConn
		pc, err = p.reserve(ctx, d)
		if err != nil {
			return nil, err
		}
		var st *ClientStream
		st, err = p.open(ctx, pc, d)
		if err == nil {
			return st, nil
		}
		var ce *ConnectError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, err
}

// reserve returns a connection with a stream slot reserved for the caller.
func (p *Pool) reserve(ctx context.Context, d Dest) (*poolConn, error) {
	key := poolKey{d.Addr, d.PeerKey}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		ks := p.keys[key]
		if ks == nil {
			ks = &keyState{}
			p.keys[key] = ks
			p.armSweepLocked() // nobody holds it (yet)
		}
		pc, dead := p.pickLocked(ks)
		if pc != nil {
			p.mu.Unlock()
			closeAll(dead)
			return pc, nil
		}
		da, lead := ks.dial.Join()
		if lead {
			p.wg.Add(1)
			go p.dial(key, ks, da, d.TLS)
		}
		p.mu.Unlock()
		closeAll(dead)
		if err := da.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// pickLocked reserves a slot on the first connection that has room and
// drops connections that can take no stream and carry none of ours (closed
// or gone away); it returns those for the caller to close outside the
// lock.
func (p *Pool) pickLocked(ks *keyState) (picked *poolConn, dead []*poolConn) {
	live := ks.conns[:0]
	for _, pc := range ks.conns {
		if picked == nil && pc.active.Load() < p.cfg.MaxStreamsPerConn && pc.cc.TryReserve() {
			pc.active.Add(1)
			picked = pc
			live = append(live, pc)
			continue
		}
		if pc.active.Load() == 0 {
			if st := pc.cc.State(); st.Closed || st.GoAway {
				dead = append(dead, pc)
				continue
			}
		}
		live = append(live, pc)
	}
	clear(ks.conns[len(live):])
	ks.conns = live
	return picked, dead
}

func closeAll(conns []*poolConn) {
	for _, pc := range conns {
		pc.cc.Close()
	}
}

// dial opens one connection for key and reports to everyone waiting on da.
func (p *Pool) dial(key poolKey, ks *keyState, da *dialonce.Dial, tlsConf *tls.Config) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout)
	defer cancel()
	cc, err := p.newConn(ctx, key.addr, tlsConf)
	p.mu.Lock()
	if err == nil && p.closed {
		cc.Close()
		err = ErrPoolClosed
	}
	if err == nil && p.keys[key] != ks {
		cc.Close()
		err = errReleased
	}
	if err == nil {
		ks.conns = append(ks.conns, &poolConn{cc: cc})
		ks.dialed++
	} else {
		p.log.Debug("hbone: dial failed", "addr", key.addr, "peer", key.peer, "error", err)
	}
	ks.dial.Finish(da, err)
	p.mu.Unlock()
}

func (p *Pool) newConn(ctx context.Context, addr netip.AddrPort, tlsConf *tls.Config) (*http2.ClientConn, error) {
	raw, err := p.cfg.Dial(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("hbone: dial %s: %w", addr, err)
	}
	tc := tlsClient(raw, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("hbone: TLS handshake with %s: %w", addr, err)
	}
	if np := tc.ConnectionState().NegotiatedProtocol; np != alpnH2 {
		tc.Close()
		return nil, fmt.Errorf("hbone: %s negotiated ALPN %s, want h2", addr, quoteOrNone(np))
	}
	cc, err := http2.NewClientConn(tc, p.h2)
	if err != nil {
		return nil, fmt.Errorf("hbone: HTTP/2 with %s: %w", addr, err)
	}
	// Wait for the peer's SETTINGS, so that reservations respect its
	// stream limit from the first one.
	if err := cc.WaitSettings(ctx); err != nil {
		cc.Close()
		return nil, fmt.Errorf("hbone: HTTP/2 with %s: %w", addr, err)
	}
	return cc, nil
}

// open sends the CONNECT on a reserved slot of pc and waits for the answer,
// at most the connect timeout (the stream itself lives on).
func (p *Pool) open(ctx context.Context, pc *poolConn, d Dest) (*ClientStream, error) {
	req := &l7.Request{Method: l7.MethodConnect, Authority: []byte(d.Authority)}
	if d.Header != nil {
		req.Header.CopyFrom(d.Header)
	}
	release := func() { pc.active.Add(-1) }
	cs, err := pc.cc.OpenStream(context.Background(), req)
	if err != nil {
		release()
		return nil, fmt.Errorf("hbone: CONNECT %s via %s: %w", d.Authority, d.Addr, err)
	}
	timer := time.AfterFunc(p.cfg.ConnectTimeout, func() { cs.Reset(http2.ErrCodeCancel) })
	stop := context.AfterFunc(ctx, func() { cs.Reset(http2.ErrCodeCancel) })
	resp, err := cs.Response()
	timedOut, cancelled := !timer.Stop(), !stop()
	switch {
	case err == nil && (timedOut || cancelled):
		err = context.DeadlineExceeded
		if cancelled && ctx.Err() != nil {
			err = ctx.Err()
		}
	case err != nil && cancelled && ctx.Err() != nil:
		err = ctx.Err()
	}
	if err != nil {
		cs.Close()
		release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("hbone: CONNECT %s via %s: %w", d.Authority, d.Addr, err)
	}
	if resp.Status != http.StatusOK {
		cs.Close()
		release()
		return nil, &ConnectError{Authority: d.Authority, Status: resp.Status}
	}
	return &ClientStream{cs: cs, release: release}, nil
}

// PoolStats describes a pool at one moment.
type PoolStats struct {
	// Conns counts open connections per peer address.
	Conns map[netip.AddrPort]int
	// Dialed counts connections opened per peer address over the life of
	// the keys the pool knows.
	Dialed map[netip.AddrPort]int
	// Keys counts the keys the pool knows, Held those of them with a
	// holder.
	Keys, Held int
	// Draining counts the connections of forgotten keys that still carry
	// streams (closed ones are not counted).
	Draining int
}

// Stats reports the pool's connections per peer address.
func (p *Pool) Stats() PoolStats {
	type entry struct {
		addr netip.AddrPort
		pc   *poolConn
	}
	var all []entry
	st := PoolStats{Conns: map[netip.AddrPort]int{}, Dialed: map[netip.AddrPort]int{}}
	p.mu.Lock()
	for k, ks := range p.keys {
		for _, pc := range ks.conns {
			all = append(all, entry{k.addr, pc})
		}
		st.Dialed[k.addr] += ks.dialed
		if ks.holds > 0 {
			st.Held++
		}
	}
	st.Keys = len(p.keys)
	retired := slices.Clone(p.retired)
	p.mu.Unlock()
	for _, e := range all {
		if !e.pc.cc.State().Closed {
			st.Conns[e.addr]++
		}
	}
	for _, pc := range retired {
		if !pc.cc.State().Closed {
			st.Draining++
		}
	}
	return st
}

// Close closes every connection, ending their streams, and waits for the
// pool's goroutines. Connect fails with ErrPoolClosed afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.cancel()
	conns := p.retired
	p.retired = nil
	for _, ks := range p.keys {
		conns = append(conns, ks.conns...)
	}
	p.keys = map[poolKey]*keyState{}
	if p.sweepOn && p.sweep.Stop() {
		p.sweepOn = false
		p.wg.Done()
	}
	p.mu.Unlock()
	p.wg.Wait()
	closeAll(conns)
}

// Shutdown stops new streams and waits, until ctx is done, for the
// streams in flight to finish; then it closes everything.
func (p *Pool) Shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	conns := slices.Clone(p.retired)
	for _, ks := range p.keys {
		conns = append(conns, ks.conns...)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc.cc.Shutdown(ctx)
		}()
	}
	wg.Wait()
	p.Close()
}

// ClientStream is an open CONNECT stream seen as a byte stream. One
// goroutine may read while another writes.
type ClientStream struct {
	cs        *http2.ClientStream
	closeOnce sync.Once
	release   func()
}

// Read reads what the peer sends; io.EOF after its END_STREAM.
func (s *ClientStream) Read(p []byte) (int, error) { return s.cs.Read(p) }

// WaitRead blocks until Read would not block (relay.ReadWaiter).
func (s *ClientStream) WaitRead() error { return s.cs.WaitRead() }

// TryRead is Read without waiting: (0, nil) when nothing has arrived
// (relay.Evented).
func (s *ClientStream) TryRead(p []byte) (int, error) { return s.cs.TryRead(p) }

// TryReadChunk is TryRead without a copy; the caller releases the chunk
// (relay.ChunkReader).
func (s *ClientStream) TryReadChunk() (http2.Chunk, error) { return s.cs.TryReadChunk() }

// SetReadNotify installs fn, called without locks each time input
// arrives or the stream ends or fails; fn must not block (relay.Evented).
func (s *ClientStream) SetReadNotify(fn func()) { s.cs.SetReadNotify(fn) }

// Write sends p in DATA frames, blocking on the peer's flow control
// windows (back-pressure).
func (s *ClientStream) Write(p []byte) (int, error) { return s.cs.Write(p) }

// WriteVec writes the buffers of bufs in turn, together in one write to
// the connection when the flow control windows allow (relay.VecWriter).
func (s *ClientStream) WriteVec(bufs [][]byte) (int, error) { return s.cs.WriteVec(bufs) }

// CloseWrite sends END_STREAM; reads go on.
func (s *ClientStream) CloseWrite() error { return s.cs.CloseWrite() }

// Close ends the stream: cleanly if both sides already ended, with
// RST_STREAM(CANCEL) otherwise. It frees the stream's slot in the pool.
func (s *ClientStream) Close() error {
	s.closeOnce.Do(func() {
		s.cs.Close()
		s.release()
	})
	return nil
}

// Abort resets the stream.
func (s *ClientStream) Abort() {
	s.cs.Reset(http2.ErrCodeCancel)
	s.Close()
}

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

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
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

// Pool opens HBONE streams over pooled connections. Safe for concurrent use.
type Pool struct {
	cfg PoolConfig
	log *slog.Logger
	h2  http2.Config
	// ctx is cancelled by Close; it bounds every dial.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // dial goroutines

	mu     sync.Mutex // guards keys, closed
	keys   map[poolKey]*keyState
	closed bool
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
	// Dialed counts connections ever opened per peer address.
	Dialed map[netip.AddrPort]int
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
	}
	p.mu.Unlock()
	for _, e := range all {
		if !e.pc.cc.State().Closed {
			st.Conns[e.addr]++
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
	var conns []*poolConn
	for _, ks := range p.keys {
		conns = append(conns, ks.conns...)
	}
	p.keys = map[poolKey]*keyState{}
	p.mu.Unlock()
	p.wg.Wait()
	closeAll(conns)
}

// Shutdown stops new streams and waits, until ctx is done, for the
// streams in flight to finish; then it closes everything.
func (p *Pool) Shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	var conns []*poolConn
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

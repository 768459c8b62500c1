// Package hbone speaks HBONE, Istio ambient's tunnel: HTTP/2 CONNECT
// streams over mutual TLS 1.3, one stream per proxied TCP connection. Server
// terminates it (the waypoint's :15008, a destination ztunnel); Pool
// originates it over pooled, multiplexed connections (the waypoint towards
// pods, a source ztunnel towards the waypoint).
//
// Both sides run on the project's own HTTP/2 engine (protocols/http2),
// which gives each tunnel independent half-close (END_STREAM from either
// side while the other still sends) and no goroutine hand-off per chunk.
package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/acceptor"
	"github.com/gowaypoint/waypoint/proxy/drain"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/proxy/sockio"
	"github.com/gowaypoint/waypoint/proxy/sockio/park"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Defaults of ServerConfig, as ztunnel configures its HBONE server.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultStreamWindow         = 4 << 20
	DefaultConnWindow           = 16 << 20
	DefaultKeepAliveInterval    = 10 * time.Second
	DefaultKeepAliveTimeout     = 20 * time.Second
	DefaultHandshakeTimeout     = 10 * time.Second
	// DefaultMaxRefusedStreams is how many CONNECT streams of one
	// connection may be refused for the peer's own fault (a bad method or
	// authority, no route) before the connection is closed, once they
	// outnumber its accepted streams. Envoy has no such limit.
	DefaultMaxRefusedStreams = 100
	// DefaultStatName names the server in its counters: the listener and
	// connection manager istiod's waypoint has for HBONE.
	DefaultStatName = "connect_terminate"
)

// Handler serves one accepted CONNECT stream. It is called on the stream's
// own goroutine and the stream lives until it returns. The handler must call
// exactly one of st.Refuse or st.Accept.
type Handler interface {
	ServeHBONE(ctx context.Context, st *ServerStream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, st *ServerStream)

// ServeHBONE calls f.
func (f HandlerFunc) ServeHBONE(ctx context.Context, st *ServerStream) { f(ctx, st) }

// ServerConfig configures a Server. TLS, PeerIdentity and Handler are
// required; zero numbers take the defaults above.
type ServerConfig struct {
	// TLS must require and verify client certificates (see proxy/certs).
	// ALPN h2 is enforced by the server.
	TLS *tls.Config
	// PeerIdentity returns the verified SPIFFE identity of a client from its
	// handshake state; a connection whose identity it refuses is closed.
	PeerIdentity func(tls.ConnectionState) (spiffe.ID, error)
	Handler      Handler
	Logger       *slog.Logger // default slog.Default()
	// OnRefuse, when set, is called on the stream's goroutine after a
	// stream is refused, with the status, the response flag and the
	// reason (the waypoint writes the HBONE entry's access log there).
	OnRefuse func(st *ServerStream, status int, flag, reason string)

	MaxConcurrentStreams uint32        // advertised per connection; default 100
	StreamWindow         int32         // per-stream receive window; default 4 MiB
	ConnWindow           int32         // per-connection receive window; default 16 MiB
	KeepAliveInterval    time.Duration // PING after this long without a frame; default 10 s
	KeepAliveTimeout     time.Duration // close when a PING is not answered in this; default 20 s
	HandshakeTimeout     time.Duration // TLS handshake deadline; default 10 s
	// MaxRefusedStreams closes a connection whose streams were refused
	// that many times for the peer's fault (bad request, no route) and more
	// often than they were accepted; default DefaultMaxRefusedStreams,
	// negative for no limit.
	MaxRefusedStreams int
	// StatName is the listener and connection manager name of the
	// server's counters; default DefaultStatName.
	StatName string
	// MaxConnectionsPerPeer and MaxStreamsPerPeer cap what one source
	// identity may hold (limits.go); defaults DefaultMaxConnectionsPerPeer
	// and DefaultMaxStreamsPerPeer, negative for no cap.
	MaxConnectionsPerPeer int
	MaxStreamsPerPeer     int
	// Overload, when set, admits connections (global limit,
	// stop_accepting_connections), refuses streams with 503 and
	// retry-after (stop_accepting_requests), drains connections
	// (disable_http_keepalive) and may reset the tunnels holding the most
	// bytes (reset_high_memory_stream). The caller owns it.
	Overload *overload.Manager
	// PeerGate, when set, admits each connection by its peer after the
	// handshake and may close it later (proxy/peerbudget); nil: none.
	PeerGate PeerGate
}

// PeerGate admits a peer's connection (false: it is closed at once) and
// may later call closeConn, which sends GOAWAY and closes the connection
// after peerCloseGrace; release is called when the connection ends.
type PeerGate interface {
	Admit(peer spiffe.ID, closeConn func()) (release func(), ok bool)
}

// peerCloseGrace is how long a connection a PeerGate closed may drain.
const peerCloseGrace = time.Second

// Server terminates HBONE. Serve may be called for several listeners;
// Shutdown drains all of them. Safe for concurrent use.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	// Counters and log throttles of refusals (refusals.go).
	lstats      *metrics.HBONEListenerStats
	hcm         *metrics.HCMStats
	connLog     [metrics.NumHandshakeReasons]lograte.Reason
	defenceLog  [http2.NumDefences]lograte.Reason
	streamLog   [numStreamRefusals]lograte.Reason
	streamStats [numStreamRefusals]prometheusCounter
	h2          http2.Config
	acc         acceptor.Acceptor
	peerLimits
	ctx  context.Context // cancelled by Shutdown: every connection drains
	stop context.CancelFunc
	// parker holds the connections waiting for their ClientHello (nil:
	// none yet, or unsupported: they wait on their goroutine). The first
	// Serve starts it, Shutdown closes it; parkMu orders the two.
	parker atomic.Pointer[park.Parker]
	parkMu sync.Mutex
}

// alpnH2 is the ALPN protocol HBONE runs on.
const alpnH2 = "h2"

// NewServer checks cfg and returns a Server that serves nothing until Serve.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil || cfg.PeerIdentity == nil || cfg.Handler == nil {
		return nil, errors.New("hbone: ServerConfig needs TLS, PeerIdentity and Handler")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDefault(&cfg.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	setDefault(&cfg.StreamWindow, DefaultStreamWindow)
	setDefault(&cfg.ConnWindow, DefaultConnWindow)
	setDefault(&cfg.KeepAliveInterval, DefaultKeepAliveInterval)
	setDefault(&cfg.KeepAliveTimeout, DefaultKeepAliveTimeout)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.MaxRefusedStreams, DefaultMaxRefusedStreams)
	setDefault(&cfg.StatName, DefaultStatName)
	setDefault(&cfg.MaxConnectionsPerPeer, DefaultMaxConnectionsPerPeer)
	setDefault(&cfg.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer)
	tlsConf := cfg.TLS.Clone()
	tlsConf.NextProtos = []string{alpnH2}
	tlsConf.GetConfigForClient = markHello(tlsConf.GetConfigForClient)
	cfg.TLS = tlsConf
	ctx, stop := drain.New() // each connection's registration leaves nothing behind
	s := &Server{cfg: cfg, log: cfg.Logger, ctx: ctx, stop: stop}
	s.initRefusals()
	s.initLimits()
	s.h2 = http2.Config{
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		InitialStreamWindow:  cfg.StreamWindow,
		InitialConnWindow:    cfg.ConnWindow,
		KeepAliveInterval:    cfg.KeepAliveInterval,
		KeepAliveTimeout:     cfg.KeepAliveTimeout,
		// A tunnel's frames are DATA of its own bytes: the header limits
		// are HBONE's (one CONNECT head), the defaults fit.
	}
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on ln until Shutdown or an accept error. It
// closes ln before returning.
func (s *Server) Serve(ln net.Listener) error {
	s.startParker()
	return s.acc.ServeHold(ln, s.parkConn, s.serveConn)
}

// startParker starts the server's Parker unless it runs or the server is
// shutting down; where there is none (not Linux), pending connections wait
// on their goroutines.
func (s *Server) startParker() {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	if s.parker.Load() != nil || s.ctx.Err() != nil {
		return
	}
	p, err := park.New()
	if err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			s.log.Warn("hbone: connections waiting for their ClientHello wait on goroutines", "error", err)
		}
		return
	}
	s.parker.Store(p)
}

// parkConn runs on the accept loop (acceptor.ServeHold): it admits a
// connection (the overload manager counts it until it ends, parked or not)
// and hands it to the Parker, which holds its socket until its first
// bytes (served by resume on a new goroutine), its FIN or reset (refused
// as other, as a handshake reading EOF) or the handshake deadline
// (refused as client_hello_timeout). Until then it holds no TLS state, no
// buffer, no goroutine and no entry in the runtime's poller
// (docs/hardening.md, memory per pending handshake). A connection whose
// first bytes are already there (most clients' ClientHello) is not parked
// but left to serveConn, as are all without a Parker (not Linux).
func (s *Server) parkConn(raw net.Conn) bool {
	p := s.parker.Load()
	if p == nil {
		return false
	}
	if !s.gate.Admit() {
		raw.Close() // refused by the overload manager, counted
		return true
	}
	pc := &pending{s: s, remote: addrPort(raw.RemoteAddr()), deadline: time.Now().Add(s.cfg.HandshakeTimeout)}
	if p.Park(raw, pc.deadline, pc) == nil {
		return true // the Parker owns the socket, pc the admission
	}
	// Served by serveConn, which admits it again: the Acceptor may close
	// it unserved if it is draining.
	s.gate.Release()
	return false
}

// serveConn serves an accepted connection the Parker did not take. Its
// goroutine waits in the poller on a one-byte peek for the ClientHello
// (at once when it is there already), with the handshake deadline on the
// socket.
func (s *Server) serveConn(raw net.Conn) {
	if !s.gate.Admit() {
		return // refused by the overload manager, counted; the acceptor closes raw
	}
	defer s.gate.Release()
	remote := addrPort(raw.RemoteAddr())
	raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sock := sockio.WrapConn(raw)
	if w, ok := sock.(interface{ WaitRead() error }); ok {
		if err := w.WaitRead(); err != nil {
			s.refuseConn(classifyHandshake(err, false), remote, "waiting for the ClientHello: "+err.Error())
			return
		}
	}
	s.serveTLS(raw, sock, remote)
}

// pending is a connection in the Parker, waiting for its ClientHello. It
// holds the overload gate's admission until the connection ends.
type pending struct {
	s        *Server
	remote   netip.AddrPort // the handed-back socket has none after a reset
	deadline time.Time      // the handshake's
}

// Ready starts the goroutine of a connection that has sent its first bytes
// or hung up, under the Acceptor (park.Owner).
func (p *pending) Ready(c net.Conn) {
	if !p.s.acc.Adopt(c, p.resume) {
		c.Close() // draining
		p.s.gate.Release()
	}
}

// resume serves a connection handed back by the Parker, as serveConn does
// after the wait, under the rest of the handshake deadline.
func (p *pending) resume(c net.Conn) {
	defer p.s.gate.Release()
	c.SetDeadline(p.deadline)
	p.s.serveTLS(c, sockio.WrapConn(c), p.remote)
}

// Gone refuses a connection the Parker closed: its peer left before
// sending a byte (EOF or a reset: other, as the handshake would), its
// deadline passed first (client_hello_timeout, as a socket deadline
// would), or a new net.Conn could not be made of it; one closed by
// Shutdown is not counted (park.Owner).
func (p *pending) Gone(err error) {
	defer p.s.gate.Release()
	if errors.Is(err, park.ErrClosed) {
		p.s.log.Debug("hbone: closed a connection waiting for its ClientHello at shutdown", "remote", p.remote)
		return
	}
	p.s.refuseConn(classifyHandshake(err, false), p.remote, "waiting for the ClientHello: "+err.Error())
}

// serveTLS runs the handshake on sock, raw's socket, under the deadline set
// on raw, then serves HTTP/2.
func (s *Server) serveTLS(raw, sock net.Conn, remote netip.AddrPort) {
	tc := tlsServer(sock, s.cfg.TLS)
	err := tc.Handshake()
	if err != nil {
		s.refuseConn(classifyHandshake(err, tc.sock.hello.Load()), remote, "TLS handshake: "+err.Error())
		return
	}
	raw.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != alpnH2 {
		s.refuseConn(metrics.ReasonALPN, remote, "ALPN "+quoteOrNone(cs.NegotiatedProtocol)+", want h2")
		return
	}
	peer, err := s.cfg.PeerIdentity(cs)
	if err != nil {
		s.refuseConn(metrics.ReasonPeerIdentity, remote, "peer identity: "+err.Error())
		return
	}
	pc := s.acquirePeer(peer)
	if pc == nil {
		s.connRefused.Inc()
		if ok, n := s.peerConnLog.Allow(); ok {
			s.log.Info("hbone: refused connection", "reason", "peer_connection_limit", "remote", remote, "peer", peer.String(),
				"limit", s.cfg.MaxConnectionsPerPeer, "suppressed", n)
		} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("hbone: refused connection", "reason", "peer_connection_limit", "remote", remote, "peer", peer.String())
		}
		return
	}
	defer s.releasePeer(peer, pc)
	s.log.Debug("hbone: connection accepted", "remote", remote, "peer", peer.String())
	ctx, drain := context.WithCancel(s.ctx) // drain: GOAWAY, streams finish (disable_http_keepalive, a PeerGate's close)
	defer drain()
	if g := s.cfg.PeerGate; g != nil {
		release, ok := g.Admit(peer, func() { drain(); time.AfterFunc(peerCloseGrace, func() { tc.Close() }) })
		if !ok {
			return
		}
		defer release()
	}
	ci := &connInfo{peer: peer, remote: remote, local: addrPort(raw.LocalAddr()), pc: pc, drain: drain}
	err = http2.ServeConn(ctx, tc, s.h2, http2.HandlerFunc(func(st *http2.ServerStream) { s.serveStream(ci, st) }))
	if d := http2.DefenceOf(err); d != http2.DefenceNone {
		s.defended(d, ci, err)
	} else if err != nil {
		s.log.Debug("hbone: connection ended", "remote", remote, "peer", peer.String(), "error", err)
	}
}

func quoteOrNone(p string) string {
	if p == "" {
		return "none"
	}
	return `"` + p + `"`
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Shutdown stops accepting and drains: every connection sends GOAWAY and
// lets its streams finish until ctx is done; then it closes what is left and
// waits for every goroutine the server started. Connections still waiting
// for their ClientHello in the Parker are closed at once (they have sent
// nothing; a handshake now would be answered with GOAWAY), not counted as
// refused. It returns ctx.Err() when it had to force connections closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.acc.StopAccepting()
	s.stop()
	s.parkMu.Lock()
	if p := s.parker.Swap(nil); p != nil {
		p.Close()
	}
	s.parkMu.Unlock()
	return s.acc.Drain(ctx)
}

// Addrs returns the addresses the server is listening on.
func (s *Server) Addrs() []net.Addr { return s.acc.Addrs() }

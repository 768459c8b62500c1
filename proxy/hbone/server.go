// Package hbone speaks HBONE, Istio ambient's tunnel: HTTP/2 CONNECT
// streams over mutual TLS 1.3, one stream per proxied TCP connection. Server
// terminates it (the waypoint's :15008, a destination ztunnel); Pool
// originates it over pooled, multiplexed connections (the waypoint towards
// pods, a source ztunnel towards the waypoint).
//
// Both sides use golang.org/x/net/http2. A known limit of its server: a
// stream's END_STREAM is sent when the handler returns, so when the upstream
// side half-closes first, the downstream peer sees the end of the stream only
// once its own side is done too. The common half-close (the client shuts its
// write side and reads the rest of the response) works.
package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/acceptor"
)

// Defaults of ServerConfig, as ztunnel configures its HBONE server.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultStreamWindow         = 4 << 20
	DefaultConnWindow           = 16 << 20
	DefaultKeepAliveInterval    = 10 * time.Second
	DefaultKeepAliveTimeout     = 20 * time.Second
	DefaultHandshakeTimeout     = 10 * time.Second
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

	MaxConcurrentStreams uint32        // advertised per connection; default 100
	StreamWindow         int32         // per-stream receive window; default 4 MiB
	ConnWindow           int32         // per-connection receive window; default 16 MiB
	KeepAliveInterval    time.Duration // PING after this long without a frame; default 10 s
	KeepAliveTimeout     time.Duration // close when a PING is not answered in this; default 20 s
	HandshakeTimeout     time.Duration // TLS handshake deadline; default 10 s
}

// Server terminates HBONE. Serve may be called for several listeners;
// Shutdown drains all of them. Safe for concurrent use.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	h1  *http.Server // carries x/net/http2's graceful-shutdown hook only
	h2  *http2.Server
	acc acceptor.Acceptor
	// streams counts stream handlers, which x/net/http2 runs on goroutines
	// that may outlive their connection's ServeConn.
	streams sync.WaitGroup
}

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
	tlsConf := cfg.TLS.Clone()
	tlsConf.NextProtos = []string{http2.NextProtoTLS}
	cfg.TLS = tlsConf

	s := &Server{
		cfg: cfg,
		log: cfg.Logger,
		h1:  &http.Server{ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)},
	}
	s.h2 = &http2.Server{
		MaxConcurrentStreams:         cfg.MaxConcurrentStreams,
		MaxUploadBufferPerStream:     cfg.StreamWindow,
		MaxUploadBufferPerConnection: cfg.ConnWindow,
		ReadIdleTimeout:              cfg.KeepAliveInterval,
		PingTimeout:                  cfg.KeepAliveTimeout,
	}
	if err := http2.ConfigureServer(s.h1, s.h2); err != nil {
		return nil, err
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
	return s.acc.Serve(ln, s.serveConn)
}

func (s *Server) serveConn(raw net.Conn) {
	remote := addrPort(raw.RemoteAddr())
	tc := tls.Server(raw, s.cfg.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Info("hbone: refused connection", "remote", remote, "reason", "TLS handshake: "+err.Error())
		return
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != http2.NextProtoTLS {
		s.log.Info("hbone: refused connection", "remote", remote, "reason", "ALPN "+quoteOrNone(cs.NegotiatedProtocol)+", want h2")
		return
	}
	peer, err := s.cfg.PeerIdentity(cs)
	if err != nil {
		s.log.Info("hbone: refused connection", "remote", remote, "reason", "peer identity: "+err.Error())
		return
	}
	s.log.Debug("hbone: connection accepted", "remote", remote, "peer", peer.String())
	conn := &connInfo{peer: peer, remote: remote, local: addrPort(raw.LocalAddr())}
	base := context.WithValue(context.Background(), connInfoKey{}, conn)
	s.h2.ServeConn(tc, &http2.ServeConnOpts{
		Context:    base,
		BaseConfig: s.h1,
		Handler:    http.HandlerFunc(s.serveStream),
	})
}

func quoteOrNone(p string) string {
	if p == "" {
		return "none"
	}
	return `"` + p + `"`
}

type connInfoKey struct{}

// connInfo is what every stream of one connection shares. Read-only after
// the handshake.
type connInfo struct {
	peer   spiffe.ID
	remote netip.AddrPort
	local  netip.AddrPort
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Shutdown stops accepting, sends GOAWAY on every connection, and waits for
// streams to finish until ctx is done; then it closes what is left and waits
// for every goroutine the server started. It returns ctx.Err() when it had to
// force connections closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.acc.StopAccepting()
	// Runs x/net/http2's graceful shutdown: GOAWAY on each connection, which
	// then closes itself when its last stream ends.
	s.h1.Shutdown(ctx)
	err := s.acc.Drain(ctx)
	s.streams.Wait()
	return err
}

// Addrs returns the addresses the server is listening on.
func (s *Server) Addrs() []net.Addr { return s.acc.Addrs() }

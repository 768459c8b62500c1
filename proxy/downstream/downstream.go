// Package downstream is the connection every connection manager serves
// (proxy/httpconn, proxy/dubboconn, proxy/tcpproxy): a downstream byte
// stream, either a TCP connection a plaintext listener accepted or an
// HBONE CONNECT stream, with what is known of its peer (identity,
// addresses, the destination it asked for), the bytes read ahead of it put
// back (proxy/replay), and its methods (half-close, abort, read deadline)
// as methods of its own rather than interfaces the managers look for.
//
// Ownership: a Conn is made by the entry that received the connection
// (proxy/inbound, proxy/listener) and handed to proxy/filterchain, which
// owns it from then on: it closes it when the HTTP or Dubbo connection
// manager returns, or hands it to tcp_proxy's relay, which closes it when
// both directions end.
package downstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/replay"
	"github.com/gowaypoint/waypoint/proxy/sockio"
)

// Transport is the byte stream under a Conn once it is answered: an
// accepted HBONE stream (*hbone.StreamConn), or a TCP connection (NewTCP
// wraps it). It is a relay.Conn that can also be aborted. One goroutine may
// read while another writes; Close and Abort may come from any goroutine.
type Transport interface {
	io.Reader
	io.Writer
	// CloseWrite ends the write half (TCP FIN, HTTP/2 END_STREAM) while
	// reads go on.
	CloseWrite() error
	// Close ends the stream cleanly.
	Close() error
	// Abort ends it abnormally (TCP RST, HTTP/2 RST_STREAM).
	Abort()
}

// Answerer answers a downstream connection that the proxy has not answered
// yet: an HBONE CONNECT stream, answered 200 once its chain can serve it
// (for tcp_proxy, once the upstream is up), or refused with an error
// status.
type Answerer interface {
	// Accept answers the connection and returns its byte stream.
	Accept() (Transport, error)
	// Refuse answers it with err's status (status.KindOf) and logs why.
	Refuse(err error)
}

// Conn is one downstream connection.
//
// Concurrency: one goroutine reads (Read, Unread) while another may write
// (Write, CloseWrite); Close and Abort may be called from any goroutine,
// also while the others run. Accept and Refuse belong to the goroutine
// serving the connection. Info and Target are set by whoever makes the
// Conn, before it is handed on, and are read-only afterwards.
type Conn struct {
	// Info describes the connection to filters, policy and telemetry: the
	// peer's identity, the two addresses, the destination, the HBONE
	// :authority and baggage. The connection managers hand out &Info, so
	// it lives as long as the Conn.
	Info filters.Downstream
	// Target is the destination the client asked the tunnel for (an HBONE
	// CONNECT's :authority), which a cluster whose host is the
	// connection's own destination dials (encap). Zero for a plaintext
	// listener's connection, which names no destination of its own.
	Target netip.AddrPort

	ctx    context.Context
	in     replay.Reader // reads: the bytes put back, then t
	t      Transport     // nil until answered
	tcp    *sockio.Conn  // t's socket when t is a TCP connection
	answer Answerer      // nil once answered
}

// ErrNotAnswered is what reading or writing a Conn returns before Accept.
var ErrNotAnswered = errors.New("downstream: connection not answered yet")

// NewTCP returns a TCP connection accepted by a listener, answered (the
// kernel did that), its reads and writes made by raw system calls
// (proxy/sockio). Info holds the socket's addresses, Destination being the
// local one; Context is context.Background.
func NewTCP(c *net.TCPConn) *Conn {
	t := relay.NewTCP(c)
	local, remote := tcpAddr(c.LocalAddr()), tcpAddr(c.RemoteAddr())
	dc := &Conn{
		Info: filters.Downstream{RemoteAddr: remote, LocalAddr: local, Destination: local},
		ctx:  context.Background(),
		t:    t,
		tcp:  t.Conn,
	}
	dc.in.R = t
	return dc
}

func tcpAddr(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// NewPending returns a connection that a answers (Accept, Refuse). ctx is
// the connection's own context, cancelled when the connection is lost (an
// HBONE stream's, cancelled when it is reset); it is not the drain
// context.
func NewPending(ctx context.Context, a Answerer, info filters.Downstream) *Conn {
	return &Conn{Info: info, ctx: ctx, answer: a}
}

// Context is the connection's own context: cancelled when the connection
// is lost (an HBONE stream's reset), context.Background for a TCP
// connection. Calls and dials made for the connection stop with it. It is
// not cancelled by a drain.
func (c *Conn) Context() context.Context { return c.ctx }

// Answered reports whether the connection has been answered: accepted, or
// made answered (NewTCP).
func (c *Conn) Answered() bool { return c.t != nil }

// Accept answers the connection (HBONE: 200) if it has not been answered
// yet; an answered one is left as it is. After an error the connection is
// gone (the answerer has released it).
func (c *Conn) Accept() error {
	if c.t != nil {
		return nil
	}
	if c.answer == nil {
		return ErrNotAnswered
	}
	t, err := c.answer.Accept()
	if err != nil {
		return err
	}
	c.t, c.in.R, c.answer = t, t, nil
	return nil
}

// Refuse ends a connection that cannot be served. One not answered yet is
// answered with err's status by its Answerer, which logs why (as
// hbone.ServerStream does); an answered one is reset (TCP RST,
// RST_STREAM), and logging is the caller's.
func (c *Conn) Refuse(err error) {
	if c.t == nil {
		if c.answer != nil {
			c.answer.Refuse(err)
		}
		return
	}
	c.t.Abort()
}

// Read reads the bytes put back (Unread) first, then the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if c.in.R == nil {
		return 0, ErrNotAnswered
	}
	return c.in.Read(p)
}

// Unread puts b back in front of what Read returns next: bytes read ahead
// to tell the protocol, or buffered by a codec that hands the stream on.
// b is kept, not copied: the caller must not change it until it has been
// read. Only the reading goroutine may call it.
func (c *Conn) Unread(b []byte) { c.in.Unread(b) }

// Write writes p to the peer.
func (c *Conn) Write(p []byte) (int, error) {
	if c.t == nil {
		return 0, ErrNotAnswered
	}
	return c.t.Write(p)
}

// CloseWrite ends the write half (TCP FIN, END_STREAM); reads go on.
func (c *Conn) CloseWrite() error {
	if c.t == nil {
		return ErrNotAnswered
	}
	return c.t.CloseWrite()
}

// Close ends the connection cleanly. A connection never answered is left
// to its answerer (hbone refuses a stream its handler left unanswered).
// Closing twice is harmless.
func (c *Conn) Close() error {
	if c.t == nil {
		return nil
	}
	return c.t.Close()
}

// Abort ends the connection abnormally: TCP RST, RST_STREAM.
func (c *Conn) Abort() {
	if c.t != nil {
		c.t.Abort()
	}
}

// SetReadDeadline sets the read deadline of a TCP connection, for
// codecs' idle timeouts and lingering closes; an HBONE stream has none
// (errors.ErrUnsupported), and its reads end when the stream does.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.tcp == nil {
		return errors.ErrUnsupported
	}
	return c.tcp.SetReadDeadline(t)
}

// Relayed is what a relay copies for this connection: its Transport
// itself while no bytes are put back, so that the relay sees what the
// stream can do (a socket's WaitRead, an HBONE stream's event-driven reads
// and Detach), or the Conn, which replays them first. Call it after
// Accept.
func (c *Conn) Relayed() relay.Conn {
	if c.in.Buffered() == 0 && c.t != nil {
		return c.t
	}
	return c
}

// String describes the connection for logs: the peer's identity when it
// has one, its address and the destination.
func (c *Conn) String() string {
	s := c.Info.RemoteAddr.String() + " -> " + c.Info.Destination.String()
	if c.Info.PeerURI != "" {
		s = c.Info.PeerURI + " " + s
	}
	return s
}

var (
	_ relay.Conn    = (*Conn)(nil)
	_ relay.Aborter = (*Conn)(nil)
	_ Transport     = relay.TCP{}
)

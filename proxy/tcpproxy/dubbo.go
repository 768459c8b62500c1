package tcpproxy

import (
	"time"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// Dubbo on tcp_proxy chains.
//
// istiod writes a tcp_proxy chain for a Service port whose protocol is TCP
// (a port named tcp-dubbo, or with no name it can read): Istio has no
// Dubbo protocol. A connection of such a chain is served as Dubbo when its
// first two bytes are Dubbo's magic (0xdabb): per call, through the
// DubboProxy the config made up for the chain (xds.TCPProxy.Dubbo, one
// route to the tcp_proxy's cluster), by proxy/dubboconn. Every other
// connection is relayed as before, byte for byte.
//
// The upstream is connected first, as for any tcp_proxy connection (the
// downstream is refused, 503, when it cannot be), and then whichever side
// speaks first decides: the client's first bytes are Dubbo's magic, and
// the upstream connection, which has carried nothing, is closed and the
// connection is served as Dubbo; the client's first bytes are anything
// else, or the server speaks first (MySQL, SMTP, SSH servers greet their
// clients), and the bytes are relayed. So there is no sniffing timeout: a
// Dubbo consumer may stay silent as long as it likes before its first call
// (it connects at start-up), and a server that speaks first is relayed at
// once. Only a connection where neither side says anything waits, as
// tcp_proxy's relay does, until the chain's idle_timeout.
//
// Sniffing needs the two sides' input to be awaited without reading it:
// the downstream must be an HBONE stream (proxy/inbound: the chains istiod
// writes), the upstream an HBONE stream or a TCP connection. A plaintext
// listener's connection, or an upstream in TLS, is relayed as before.

// sniffResult is what the first bytes said.
type sniffResult int

const (
	sniffTCP   sniffResult = iota // relay the bytes
	sniffDubbo                    // serve as Dubbo
	sniffIdle                     // nothing moved for the idle timeout
)

// sniffer awaits the first bytes of a connection's two sides.
type sniffer struct {
	down relay.Evented // the downstream's byte stream
	up   relay.Conn
	// upWait, for an upstream that is not Evented, is closed once the
	// goroutine awaiting its input (WaitRead) has returned; the relay must
	// not read the upstream before (upWaited).
	upWait chan struct{}
	// prefix holds the downstream's bytes read to tell the protocol.
	prefix [2]byte
	n      int
}

// newSniffer returns a sniffer of dc (the downstream's byte stream, with
// nothing put back) and up, or nil when they cannot be sniffed.
func newSniffer(dc, up relay.Conn) *sniffer {
	de, ok := dc.(relay.Evented)
	if !ok {
		return nil
	}
	s := &sniffer{down: de, up: up}
	if _, ok := up.(relay.Evented); ok {
		return s
	}
	if _, ok := up.(relay.ReadWaiter); ok {
		return s
	}
	return nil
}

// run waits for the first side to speak and reports what it said. With
// sniffDubbo, the bytes read are in prefix[:n] and the upstream is left to
// the caller to close; with sniffTCP they are to be written upstream
// before the relay starts. idle bounds the wait (0: none).
func (s *sniffer) run(idle time.Duration) sniffResult {
	downCh, upCh := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(ch chan struct{}) func() {
		return func() {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	s.down.SetReadNotify(signal(downCh))
	defer s.down.SetReadNotify(nil)
	switch u := s.up.(type) {
	case relay.Evented:
		u.SetReadNotify(signal(upCh))
		defer u.SetReadNotify(nil)
	case relay.ReadWaiter:
		s.upWait = make(chan struct{})
		go func() {
			defer close(s.upWait)
			u.WaitRead() // its error, if any, is the relay's to see
			signal(upCh)()
		}()
	}
	var timeout <-chan time.Time
	if idle > 0 {
		t := time.NewTimer(idle)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-upCh:
			return sniffTCP
		case <-timeout:
			return sniffIdle
		case <-downCh:
		}
		k, err := s.down.TryRead(s.prefix[s.n:])
		s.n += k
		switch {
		case err != nil:
			return sniffTCP // the relay sees the end or the error
		case s.n == 0:
			continue // a spurious notification
		case s.prefix[0] != dubbo.Magic>>8:
			return sniffTCP
		case s.n == len(s.prefix):
			if dubbo.IsDubbo(s.prefix[:]) {
				return sniffDubbo
			}
			return sniffTCP
		}
	}
}

// upWaited waits until the upstream may be read by another goroutine.
func (s *sniffer) upWaited() {
	if s.upWait != nil {
		<-s.upWait
	}
}

// upstream returns what the relay copies from the upstream: up, or for an
// upstream a goroutine is still awaiting, up behind a wrapper whose first
// read waits for that goroutine.
func (s *sniffer) upstream() relay.Conn {
	if s.upWait == nil {
		return s.up
	}
	return &waitedConn{Conn: s.up, wait: s.upWait}
}

// waitedConn is an upstream whose reads start once wait is closed.
type waitedConn struct {
	relay.Conn
	wait chan struct{}
}

func (c *waitedConn) Read(p []byte) (int, error) {
	<-c.wait
	return c.Conn.Read(p)
}

// Abort aborts the upstream.
func (c *waitedConn) Abort() {
	if a, ok := c.Conn.(relay.Aborter); ok {
		a.Abort()
		return
	}
	c.Conn.Close()
}

var _ relay.Aborter = (*waitedConn)(nil)

// unread puts the sniffed bytes back in front of c's stream.
func (s *sniffer) unread(c *downstream.Conn) {
	if s.n > 0 {
		c.Unread(s.prefix[:s.n])
	}
}

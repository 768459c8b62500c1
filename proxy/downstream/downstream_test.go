package downstream

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

// Addresses of this package's tests: 127.78.1.0/24.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns a listener-side connection as NewTCP makes it, and the
// client's end.
func tcpPair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 78, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := ln.AcceptTCP() // the handshake is done: no wait
	if err != nil {
		t.Fatal(err)
	}
	c := NewTCP(s)
	t.Cleanup(func() { c.Close() })
	return c, client
}

// TestTCP: a listener's connection is answered at once, knows its
// addresses, replays what was put back before the socket's bytes, and
// hands a relay the socket itself once nothing is left to replay.
func TestTCP(t *testing.T) {
	c, client := tcpPair(t)
	if !c.Answered() || c.Accept() != nil {
		t.Fatal("a TCP connection is answered from the start")
	}
	if c.Info.RemoteAddr.String() != client.LocalAddr().String() || c.Info.Destination.String() != client.RemoteAddr().String() ||
		c.Info.LocalAddr != c.Info.Destination {
		t.Errorf("Info = %+v for %v -> %v", c.Info, client.LocalAddr(), client.RemoteAddr())
	}
	if c.Target.IsValid() {
		t.Errorf("Target = %v, want none for a plaintext listener's connection", c.Target)
	}
	if c.Context() != context.Background() {
		t.Error("a TCP connection's context is context.Background")
	}

	client.Write([]byte("world"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "world" {
		t.Fatalf("read %q %v", buf, err)
	}
	c.Unread(buf[:5])
	if _, ok := c.Relayed().(*Conn); !ok {
		t.Errorf("Relayed = %T with bytes put back, want the Conn that replays them", c.Relayed())
	}
	client.Write([]byte("!"))
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "world!" {
		t.Fatalf("after Unread: %q %v", got, err)
	}
	if _, ok := c.Relayed().(relay.ReadWaiter); !ok {
		t.Errorf("Relayed = %T once the bytes are read, want the socket (a relay.ReadWaiter)", c.Relayed())
	}

	if _, err := c.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(client); err != nil || string(b) != "back" {
		t.Fatalf("client read %q %v, want the bytes then EOF", b, err)
	}

	// The read deadline is the socket's.
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := c.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after a past deadline: %v, want a timeout", err)
	}
}

// TestAbortResets: Refuse of an answered connection resets it.
func TestAbortResets(t *testing.T) {
	c, client := tcpPair(t)
	c.Refuse(errors.New("no upstream"))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("client read %v after Refuse, want a reset", err)
	}
}

// fakeStream is a Transport that records what was done to it.
type fakeStream struct {
	strings.Reader
	wrote              strings.Builder
	closed, aborted    bool
	closedWrite        bool
	acceptErr, refused error
}

func (f *fakeStream) Write(p []byte) (int, error) { return f.wrote.Write(p) }
func (f *fakeStream) CloseWrite() error           { f.closedWrite = true; return nil }
func (f *fakeStream) Close() error                { f.closed = true; return nil }
func (f *fakeStream) Abort()                      { f.aborted = true }

// answerer answers with the fake stream.
type answerer struct{ f *fakeStream }

func (a answerer) Accept() (Transport, error) {
	if a.f.acceptErr != nil {
		return nil, a.f.acceptErr
	}
	return a.f, nil
}
func (a answerer) Refuse(err error) { a.f.refused = err }

// TestPending: a connection not yet answered is answered by its Answerer,
// refused through it, and neither read nor written before.
func TestPending(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		f := &fakeStream{}
		f.Reset("request")
		c := NewPending(context.Background(), answerer{f}, filters.Downstream{PeerURI: "spiffe://td/ns/a/sa/b"})
		if _, err := c.Read(make([]byte, 1)); err != ErrNotAnswered {
			t.Errorf("read before Accept: %v", err)
		}
		if _, err := c.Write([]byte("x")); err != ErrNotAnswered {
			t.Errorf("write before Accept: %v", err)
		}
		if c.Close() != nil || f.closed {
			t.Error("Close before Accept is left to the answerer")
		}
		if err := c.Accept(); err != nil || !c.Answered() {
			t.Fatalf("Accept: %v", err)
		}
		if c.Relayed() != Transport(f) {
			t.Errorf("Relayed = %T, want the stream itself", c.Relayed())
		}
		b, _ := io.ReadAll(c)
		c.Write([]byte("response"))
		c.CloseWrite()
		c.Refuse(errors.New("late"))
		if string(b) != "request" || f.wrote.String() != "response" || !f.closedWrite || !f.aborted || f.refused != nil {
			t.Errorf("read %q, stream %+v: want the request read, the response written, half-closed, then aborted", b, f)
		}
		if err := c.SetReadDeadline(time.Now()); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SetReadDeadline on a stream: %v, want ErrUnsupported", err)
		}
		if s := c.String(); !strings.HasPrefix(s, "spiffe://td/ns/a/sa/b ") {
			t.Errorf("String = %q, want the peer first", s)
		}
	})
	t.Run("refused", func(t *testing.T) {
		f := &fakeStream{}
		c := NewPending(context.Background(), answerer{f}, filters.Downstream{})
		boom := errors.New("no route")
		c.Refuse(boom)
		if f.refused != boom || f.aborted {
			t.Errorf("Refuse before Accept: answerer got %v, aborted %v; want the answerer to answer", f.refused, f.aborted)
		}
	})
	t.Run("gone before accept", func(t *testing.T) {
		f := &fakeStream{acceptErr: io.ErrClosedPipe}
		c := NewPending(context.Background(), answerer{f}, filters.Downstream{})
		if err := c.Accept(); err != io.ErrClosedPipe || c.Answered() {
			t.Errorf("Accept = %v, answered %v", err, c.Answered())
		}
	})
}

// TestReadWriteAllocateNothing: the connection type costs no allocation
// per read or write (it sits under every codec's reads and writes).
func TestReadWriteAllocateNothing(t *testing.T) {
	f := &fakeStream{}
	c := NewPending(context.Background(), answerer{f}, filters.Downstream{})
	c.Accept()
	buf := make([]byte, 16)
	prefix := []byte("PRI")
	allocs := testing.AllocsPerRun(100, func() {
		f.Reset("GET / HTTP/1.1\r\n\r\n")
		c.Unread(prefix)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		f.wrote.Reset()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per replayed read, want 0", allocs)
	}
}

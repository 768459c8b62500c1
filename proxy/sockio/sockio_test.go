package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Addresses of this package's tests: 127.0.26.0/24.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a wrapped client connection and the server's end.
func pair(t testing.TB) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.26.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	w := Wrap(c.(*net.TCPConn))
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s.(*net.TCPConn)
}

func TestReadWrite(t *testing.T) {
	c, peer := pair(t)
	if w := WrapConn(c.TCPConn); w.(*Conn).Raw() == nil {
		t.Fatal("no raw connection for an open TCP socket")
	}
	// 8 MiB each way is more than the socket buffers hold, so both
	// directions wait in the poller for room.
	const size = 8 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	echoed := make(chan error, 1)
	go func() {
		_, err := io.Copy(peer, peer)
		peer.CloseWrite()
		echoed <- err
	}()
	written := make(chan error, 1)
	go func() {
		n, err := c.Write(payload)
		if err == nil && n != size {
			err = io.ErrShortWrite
		}
		c.CloseWrite()
		written <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("echo: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes back, want the %d written", len(got), size)
	}
	if n, err := c.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's FIN: %d, %v; want 0, EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(c *Conn, peer *net.TCPConn)
		op    func(c *Conn) error
		check func(error) bool
		want  string
	}{
		{
			name:  "read deadline",
			setup: func(c *Conn, _ *net.TCPConn) { c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) },
			op:    func(c *Conn) error { _, err := c.Read(make([]byte, 1)); return err },
			check: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
			want:  "os.ErrDeadlineExceeded",
		},
		{
			name:  "write deadline while the peer does not read",
			setup: func(c *Conn, _ *net.TCPConn) { c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)) },
			op:    func(c *Conn) error { _, err := c.Write(make([]byte, 64<<20)); return err },
			check: func(err error) bool { var ne net.Error; return errors.As(err, &ne) && ne.Timeout() },
			want:  "a timeout",
		},
		{
			name:  "read after close",
			setup: func(c *Conn, _ *net.TCPConn) { c.Close() },
			op:    func(c *Conn) error { _, err := c.Read(make([]byte, 1)); return err },
			check: func(err error) bool { return errors.Is(err, net.ErrClosed) },
			want:  "net.ErrClosed",
		},
		{
			name: "read after the peer's reset",
			setup: func(c *Conn, peer *net.TCPConn) {
				peer.SetLinger(0)
				peer.Close()
				time.Sleep(20 * time.Millisecond)
			},
			op:    func(c *Conn) error { _, err := c.Read(make([]byte, 1)); return err },
			check: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) },
			want:  "ECONNRESET",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := pair(t)
			tt.setup(c, peer)
			err := tt.op(c)
			if !tt.check(err) {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("%T is not a *net.OpError", err)
			}
		})
	}
}

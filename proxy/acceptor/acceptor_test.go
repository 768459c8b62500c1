package acceptor

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.6.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestDrainWaitsForConnections(t *testing.T) {
	var a Acceptor
	ln := listen(t)
	release := make(chan struct{})
	served := make(chan struct{}, 1)
	go a.Serve(ln, func(c net.Conn) {
		served <- struct{}{}
		<-release
		c.Write([]byte("bye"))
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-served

	drained := make(chan error, 1)
	go func() { drained <- a.Drain(context.Background()) }()
	// New connections are refused once draining: the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Drain began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while a connection was in flight", err)
	default:
	}
	close(release)
	b, _ := io.ReadAll(c)
	if string(b) != "bye" {
		t.Fatalf("in-flight connection got %q, want its whole answer", b)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil", err)
	}
}

func TestDrainDeadlineClosesConnections(t *testing.T) {
	var a Acceptor
	ln := listen(t)
	served := make(chan struct{}, 1)
	go a.Serve(ln, func(c net.Conn) {
		served <- struct{}{}
		io.Copy(io.Discard, c) // blocks until the connection is closed
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-served
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after a forced drain")
	}
}

func TestServeAfterDrain(t *testing.T) {
	var a Acceptor
	a.Drain(context.Background())
	if err := a.Serve(listen(t), func(net.Conn) {}); !errors.Is(err, ErrDraining) {
		t.Fatalf("Serve after Drain = %v, want ErrDraining", err)
	}
}

// TestAdopt: an adopted connection is served on its own goroutine,
// closed after its handler returns and, like an accepted one, waited for
// and closed by a drain; once draining, Adopt refuses and leaves the
// connection open.
func TestAdopt(t *testing.T) {
	var a Acceptor
	ln, err := net.Listen("tcp", "127.0.205.10:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}

	client, server := dial()
	defer client.Close()
	if !a.Adopt(server, func(c net.Conn) { c.Write([]byte("served")) }) {
		t.Fatal("Adopt refused before Drain")
	}
	if b, err := io.ReadAll(client); err != nil || string(b) != "served" {
		t.Fatalf("read %q, %v; want the handler's answer, then the connection closed", b, err)
	}

	held, server := dial()
	defer held.Close()
	served := make(chan struct{})
	a.Adopt(server, func(c net.Conn) {
		close(served)
		io.Copy(io.Discard, c) // until the drain closes it
	})
	<-served
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded: it waited for the adopted connection", err)
	}
	if _, err := held.Read(make([]byte, 1)); err == nil {
		t.Fatal("adopted connection still open after a forced drain")
	}

	late, server := dial()
	defer late.Close()
	defer server.Close()
	if a.Adopt(server, func(net.Conn) { t.Error("served while draining") }) {
		t.Fatal("Adopt accepted a connection while draining")
	}
	late.Write([]byte("x"))
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the refused connection was closed: %v", err)
	}
}

// TestServeHold: a connection hold takes is neither served nor tracked (a
// drain does not wait for it); one it leaves is served by handle.
func TestServeHold(t *testing.T) {
	var a Acceptor
	ln, err := net.Listen("tcp", "127.0.205.11:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	accepted := 0 // the accept loop's
	hold := func(c net.Conn) bool {
		if accepted++; accepted == 1 {
			held <- c
			return true
		}
		return false
	}
	served := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() {
		done <- a.ServeHold(ln, hold, func(c net.Conn) {
			served <- struct{}{}
			c.Write([]byte("served"))
		})
	}()
	first, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	c := <-held
	defer c.Close()
	second, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if b, err := io.ReadAll(second); err != nil || string(b) != "served" {
		t.Fatalf("second connection read %q, %v; want it served", b, err)
	}
	if err := a.Drain(context.Background()); err != nil {
		t.Fatalf("Drain = %v, want nil: the held connection is not the Acceptor's", err)
	}
	if err := <-done; !errors.Is(err, ErrDraining) {
		t.Fatalf("ServeHold = %v, want ErrDraining", err)
	}
	if len(served) != 1 {
		t.Fatalf("handle ran %d times, want once (the held connection is not served)", len(served))
	}
	c.Write([]byte("held"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(first, buf); err != nil || string(buf) != "held" {
		t.Fatalf("held connection read %q, %v; want it open after the drain", buf, err)
	}
}

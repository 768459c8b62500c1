//go:build linux

package park

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/proxy/sockio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses: 127.0.205.0/24.

// outcome is what a parked connection's owner was told.
type outcome struct {
	conn net.Conn // Ready
	err  error    // Gone
}

// recorder is an Owner that records its calls; a second call shows as a
// second outcome.
type recorder chan outcome

func newRecorder() recorder { return make(recorder, 2) }

func (r recorder) Ready(c net.Conn) { r <- outcome{conn: c} }
func (r recorder) Gone(err error)   { r <- outcome{err: err} }

// wait returns the recorder's first outcome.
func (r recorder) wait(t *testing.T) outcome {
	t.Helper()
	select {
	case o := <-r:
		if o.conn != nil {
			t.Cleanup(func() { o.conn.Close() })
		}
		return o
	case <-time.After(30 * time.Second):
		t.Fatal("the parker told the owner nothing")
		return outcome{}
	}
}

// wokenBy parks server, writes data from client and returns the
// connection handed back for it.
func wokenBy(t *testing.T, p *Parker, client, server net.Conn, data string) net.Conn {
	t.Helper()
	r := newRecorder()
	if err := p.Park(server, time.Now().Add(time.Hour), r); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte(data))
	back := r.wait(t).conn
	if back == nil {
		t.Fatal("not handed back")
	}
	return back
}

func newParker(t *testing.T) *Parker {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func listen(t *testing.T, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pair dials ln and returns the client's end and the accepted one.
func pair(t *testing.T, ln net.Listener) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// readAll reads c until EOF or error, under a deadline.
func readAll(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return io.ReadAll(c)
}

// TestParkedConnectionLeaves: a parked connection with input is handed
// back, on a new net.Conn of the same socket that reads every byte the
// peer sent, FIN included; one whose peer hangs up or resets before
// sending anything is closed, its owner told why. The net.Conn it was
// parked from is closed.
func TestParkedConnectionLeaves(t *testing.T) {
	ln := listen(t, "127.0.205.1")
	p := newParker(t)
	tests := []struct {
		name   string
		before func(c net.Conn) // the peer, before Park
		after  func(c net.Conn) // the peer, after Park
		check  func(t *testing.T, back net.Conn)
		gone   error // Gone's error; nil: handed back
		refuse error // Park's error: the connection stays the caller's, checked as it is
	}{
		{
			name:   "input after parking",
			before: func(net.Conn) {},
			after:  func(c net.Conn) { c.Write([]byte("\x16\x03\x01hello")); c.(*net.TCPConn).CloseWrite() },
			check:  wantBytes("\x16\x03\x01hello"),
		},
		{
			name:   "input before parking: not parked",
			before: func(c net.Conn) { c.Write([]byte("early")); c.(*net.TCPConn).CloseWrite() },
			after:  func(net.Conn) {},
			check:  wantBytes("early"),
			refuse: ErrReady,
		},
		{
			name:   "part of a ClientHello, then FIN: a handshake sees the bytes, then EOF",
			before: func(net.Conn) {},
			after:  func(c net.Conn) { c.Write([]byte("\x16\x03\x01")); c.Close() },
			check: func(t *testing.T, back net.Conn) {
				back.SetDeadline(time.Now().Add(30 * time.Second))
				err := tls.Server(back, &tls.Config{}).Handshake()
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("handshake: %v, want an unexpected EOF (a record header cut short)", err)
				}
			},
		},
		{
			name:   "peer closes, nothing sent",
			before: func(net.Conn) {},
			after:  func(c net.Conn) { c.Close() },
			gone:   io.EOF,
		},
		{
			name:   "peer closed before parking: not parked",
			before: func(c net.Conn) { c.Close() },
			after:  func(net.Conn) {},
			check:  wantBytes(""),
			refuse: ErrReady,
		},
		{
			name:   "peer resets",
			before: func(net.Conn) {},
			after:  func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() },
			gone:   syscall.ECONNRESET,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, ln)
			tc.before(client)
			if tc.refuse != nil {
				// Until the peer's bytes or FIN are there, none read.
				if err := sockio.Wrap(server.(*net.TCPConn)).WaitRead(); err != nil {
					t.Fatal(err)
				}
			}
			r := newRecorder()
			err := p.Park(server, time.Now().Add(time.Hour), r)
			if tc.refuse != nil {
				if !errors.Is(err, tc.refuse) {
					t.Fatalf("Park: %v, want %v", err, tc.refuse)
				}
				tc.check(t, server)
				if len(r) != 0 || p.Len() != 0 {
					t.Fatalf("a connection Park refused was parked: %+v", <-r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := server.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("the parked net.Conn reads: %v, want it closed", err)
			}
			tc.after(client)
			o := r.wait(t)
			switch {
			case tc.gone != nil && o.conn != nil:
				t.Fatalf("handed back, want gone with %v", tc.gone)
			case tc.gone != nil && !errors.Is(o.err, tc.gone):
				t.Fatalf("gone with %v, want %v", o.err, tc.gone)
			case tc.gone == nil && o.conn == nil:
				t.Fatalf("gone (%v), want handed back", o.err)
			case tc.gone == nil:
				if ra := o.conn.RemoteAddr(); ra == nil || ra.String() != client.LocalAddr().String() {
					t.Errorf("handed back with remote %v, want %v", ra, client.LocalAddr())
				}
				tc.check(t, o.conn)
			}
			if n := p.Len(); n != 0 {
				t.Errorf("%d still parked", n)
			}
			if len(r) != 0 {
				t.Errorf("the owner was told twice: %+v", <-r)
			}
		})
	}
}

func wantBytes(want string) func(t *testing.T, back net.Conn) {
	return func(t *testing.T, back net.Conn) {
		got, err := readAll(back)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
}

// TestParkedConnectionHandedBackCanAnswer: the connection handed back
// writes to the peer as well.
func TestParkedConnectionHandedBackCanAnswer(t *testing.T) {
	ln := listen(t, "127.0.205.2")
	p := newParker(t)
	client, server := pair(t, ln)
	back := wokenBy(t, p, client, server, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(back, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	back.Write([]byte("pong"))
	back.Close()
	if got, err := readAll(client); err != nil || string(got) != "pong" {
		t.Fatalf("client read %q, %v; want pong then EOF", got, err)
	}
}

// TestParkedConnectionDeadline: a connection that sends nothing before
// its deadline is closed (the peer sees EOF) and its owner told
// ErrDeadline, a timeout; one that left before its deadline is not told
// again when the deadline passes.
func TestParkedConnectionDeadline(t *testing.T) {
	ln := listen(t, "127.0.205.3")
	p := newParker(t)
	leaving, leavingSrv := pair(t, ln)
	staying, stayingSrv := pair(t, ln)
	left, expired := newRecorder(), newRecorder()
	now := time.Now()
	if err := p.Park(leavingSrv, now.Add(100*time.Millisecond), left); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(stayingSrv, now.Add(200*time.Millisecond), expired); err != nil {
		t.Fatal(err)
	}
	leaving.Write([]byte("x"))
	if o := left.wait(t); o.conn == nil {
		t.Fatalf("gone (%v), want handed back", o.err)
	}
	o := expired.wait(t)
	if o.conn != nil {
		t.Fatal("handed back with no input")
	}
	var ne net.Error
	if !errors.Is(o.err, ErrDeadline) || !errors.As(o.err, &ne) || !ne.Timeout() {
		t.Fatalf("gone with %v, want ErrDeadline, a timeout", o.err)
	}
	if got, err := readAll(staying); err != nil || len(got) != 0 {
		t.Fatalf("the peer read %q, %v; want EOF", got, err)
	}
	// The deadline queue went past the first connection's entry before
	// the second's: its owner was told once.
	if len(left) != 0 {
		t.Fatalf("the connection that left was told again: %+v", <-left)
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("%d still parked", n)
	}
}

// TestParkerClose: Close closes every parked connection (the peers see
// EOF, the owners ErrClosed) and ends the Parker's goroutine (TestMain's
// leak check); Park then fails and leaves the connection to its caller.
func TestParkerClose(t *testing.T) {
	ln := listen(t, "127.0.205.4")
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	clients := make([]net.Conn, n)
	owners := make([]recorder, n)
	for i := range n {
		var server net.Conn
		clients[i], server = pair(t, ln)
		owners[i] = newRecorder()
		if err := p.Park(server, time.Now().Add(time.Hour), owners[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Len(); got != n {
		t.Fatalf("%d parked, want %d", got, n)
	}
	p.Close()
	for i := range n {
		if o := owners[i].wait(t); !errors.Is(o.err, ErrClosed) {
			t.Fatalf("connection %d: %+v, want gone with ErrClosed", i, o)
		}
		if got, err := readAll(clients[i]); err != nil || len(got) != 0 {
			t.Fatalf("peer %d read %q, %v; want EOF", i, got, err)
		}
	}
	if got := p.Len(); got != 0 {
		t.Fatalf("%d parked after Close", got)
	}
	p.Close() // idempotent

	client, server := pair(t, ln)
	if err := p.Park(server, time.Now().Add(time.Hour), newRecorder()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Park after Close: %v, want ErrClosed", err)
	}
	client.Write([]byte("still mine"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "still mine" {
		t.Fatalf("the connection Park refused reads %q, %v", buf, err)
	}
}

// TestParkMany: many connections parked at once; those with input come
// back with their own bytes, the others stay until their peers close;
// and once none is left, the Parker drops what it had grown.
func TestParkMany(t *testing.T) {
	ln := listen(t, "127.0.205.5")
	p := newParker(t)
	n := 1000
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(3*n+100) {
		n = (int(rl.Cur) - 100) / 3 // a client, an accepted end, a parked duplicate
	}
	clients := make([]net.Conn, n)
	owners := make([]recorder, n)
	for i := range n {
		var server net.Conn
		clients[i], server = pair(t, ln)
		owners[i] = newRecorder()
		if err := p.Park(server, time.Now().Add(time.Hour), owners[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		fmt.Fprintf(clients[i], "conn %d", i)
		clients[i].(*net.TCPConn).CloseWrite()
	}
	for i := 0; i < n; i += 2 {
		o := owners[i].wait(t)
		if o.conn == nil {
			t.Fatalf("connection %d gone (%v), want handed back", i, o.err)
		}
		got, err := readAll(o.conn)
		if want := fmt.Sprintf("conn %d", i); err != nil || string(got) != want {
			t.Fatalf("connection %d read %q, %v; want %q", i, got, err, want)
		}
		o.conn.Close()
	}
	if got, want := p.Len(), n/2; got != want {
		t.Fatalf("%d parked, want %d", got, want)
	}
	for i := 1; i < n; i += 2 {
		if len(owners[i]) != 0 {
			t.Fatalf("connection %d without input: %+v", i, <-owners[i])
		}
		clients[i].Close()
	}
	for i := 1; i < n; i += 2 {
		if o := owners[i].wait(t); !errors.Is(o.err, io.EOF) {
			t.Fatalf("connection %d: %+v, want gone with EOF, its peer having closed", i, o)
		}
	}
	// Once empty, the goroutine goes back to sleep having dropped the
	// slots and the queue.
	for {
		p.mu.Lock()
		sleeping, slots, queue := p.sleeping, cap(p.slots), cap(p.queue)
		p.mu.Unlock()
		if sleeping {
			if slots > keepCap || queue > keepCap {
				t.Fatalf("empty parker holds %d slots and %d deadlines", slots, queue)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
}

// TestParkNeedsDescriptor: a connection without a socket descriptor is
// refused and left alone.
func TestParkNeedsDescriptor(t *testing.T) {
	p := newParker(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := p.Park(a, time.Now().Add(time.Hour), newRecorder()); err == nil {
		t.Fatal("parked a net.Pipe")
	}
	go a.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := b.Read(buf); err != nil {
		t.Fatalf("the pipe was closed: %v", err)
	}
}

// TestHandBackClosesDescriptor: handBack leaves no descriptor of its
// own: the process holds as many after a connection went through the
// parker as before.
func TestHandBackClosesDescriptor(t *testing.T) {
	ln := listen(t, "127.0.205.6")
	p := newParker(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	client, server := pair(t, ln)
	before := fds()
	back := wokenBy(t, p, client, server, "x")
	if got := fds(); got != before {
		t.Fatalf("%d descriptors open with the connection handed back, %d before parking", got, before)
	}
	buf := make([]byte, 1)
	if _, err := back.Read(buf); err != nil || !bytes.Equal(buf, []byte("x")) {
		t.Fatalf("read %q, %v", buf, err)
	}
}

package http2

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// eventually polls cond (no timing assertion: it only bounds a hang).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// serveCtx serves one connection with a cancellable context.
func serveCtx(t *testing.T, ctx context.Context, cfg Config, h Handler) (addr string, done <-chan error) {
	ln, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conn net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			ch <- err
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		ch <- ServeConn(ctx, c, cfg, h)
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

func TestServerGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := serveCtx(t, ctx, Config{}, HandlerFunc(func(st *ServerStream) {
		started <- struct{}{}
		<-release
		st.WriteResponse(&l7.Response{Status: 200})
	}))
	cc := dialClient(t, addr, Config{})
	type result struct {
		resp *l7.Response
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
		inFlight <- result{resp, err}
	}()
	<-started
	cancel()
	eventually(t, "GOAWAY", func() bool { return cc.State().GoAway })
	if _, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/")); !IsUnprocessed(err) {
		t.Fatalf("new stream after GOAWAY: %v", err)
	}
	close(release)
	if r := <-inFlight; r.err != nil || r.resp.Status != 200 {
		t.Fatalf("stream in flight: %v %v", r.resp, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	eventually(t, "the client to see the close", func() bool { return cc.State().Closed })
}

func TestServerIgnoresStreamsAfterGoAway(t *testing.T) {
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := serveCtx(t, ctx, Config{}, HandlerFunc(func(st *ServerStream) {
		<-release
		st.WriteResponse(&l7.Response{Status: 200})
	}))
	c := dialRaw(t, addr, false)
	c.headers(1, true)
	c.fr.WritePing(false, [8]byte{1})
	c.readUntil(func(f xhttp2.Frame) bool { p, ok := f.(*xhttp2.PingFrame); return ok && p.IsAck() })
	cancel()
	g, _ := c.readUntil(isGoAway(ErrCodeNo)).(*xhttp2.GoAwayFrame)
	if g == nil || g.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v, want last stream 1", g)
	}
	c.headers(3, true) // above the last stream id: ignored
	close(release)
	var got []uint32
	c.readUntil(func(f xhttp2.Frame) bool {
		if h, ok := f.(*xhttp2.HeadersFrame); ok {
			got = append(got, h.StreamID)
		}
		return false
	})
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("responses on streams %v, want only 1", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestServerDrainTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handlerCtxDone := make(chan struct{})
	started := make(chan struct{})
	addr, done := serveCtx(t, ctx, Config{DrainTimeout: 50 * time.Millisecond}, HandlerFunc(func(st *ServerStream) {
		close(started)
		<-st.Context().Done()
		close(handlerCtxDone)
	}))
	cc := dialClient(t, addr, Config{})
	cs, err := cc.OpenStream(context.Background(), newRequest("POST", "example.com", "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, errDrainTimeout) {
		t.Fatalf("ServeConn: %v, want the drain timeout", err)
	}
	<-handlerCtxDone
	if _, err := cs.Response(); err == nil {
		t.Fatal("stream survived the drain timeout")
	}
}

func TestIdleTimeout(t *testing.T) {
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			var scfg, ccfg Config
			if side == "server" {
				scfg.IdleTimeout = 20 * time.Millisecond
			} else {
				ccfg.IdleTimeout = 20 * time.Millisecond
			}
			addr, done := serveCtx(t, context.Background(), scfg, okHandler)
			cc := dialClient(t, addr, ccfg)
			resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			eventually(t, "the idle connection to close", func() bool { return cc.State().Closed })
			if err := <-done; err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	cfg := Config{KeepAliveInterval: 10 * time.Millisecond, KeepAliveTimeout: 30 * time.Millisecond}
	t.Run("answered", func(t *testing.T) {
		addr, _ := serveCtx(t, context.Background(), cfg, okHandler)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		pc := newPingCounter(nc)
		cc, err := NewClientConn(pc, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close(); pc.wait() })
		// Five PINGs span more than KeepAliveTimeout: the server only
		// keeps the connection because the client answers each one.
		eventually(t, "five keep-alive PINGs", func() bool { return pc.pings.Load() >= 5 })
		resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
		if err != nil {
			t.Fatalf("connection with answered PINGs: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
	})
	t.Run("unanswered", func(t *testing.T) {
		addr, done := serveCtx(t, context.Background(), cfg, okHandler)
		c := dialRaw(t, addr, false)
		pinged := false
		c.readUntil(func(f xhttp2.Frame) bool { // read, never answer
			if p, ok := f.(*xhttp2.PingFrame); ok && !p.IsAck() {
				pinged = true
			}
			return false
		})
		if !pinged {
			t.Fatal("no keep-alive PING")
		}
		if err := <-done; err == nil {
			t.Fatal("ServeConn reported a clean end for a dead peer")
		}
	})
}

func TestClientReserve(t *testing.T) {
	old := reservationTimeout
	reservationTimeout = 50 * time.Millisecond
	defer func() { reservationTimeout = old }()
	ts := startServer(t, Config{MaxConcurrentStreams: 2}, okHandler)
	cc := dialClient(t, ts.addr(), Config{})
	eventually(t, "the server's SETTINGS", func() bool { return cc.State().MaxConcurrentStreams == 2 })
	if !cc.TryReserve() || !cc.TryReserve() {
		t.Fatal("two reservations refused")
	}
	if cc.TryReserve() {
		t.Fatal("third reservation over a limit of 2")
	}
	if st := cc.State(); st.Reserved != 2 || st.ActiveStreams != 0 {
		t.Fatalf("state %+v", st)
	}
	resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if st := cc.State(); st.Reserved != 1 {
		t.Fatalf("RoundTrip did not use a reservation: %+v", st)
	}
	io.Copy(io.Discard, resp.Body)
	eventually(t, "the unused reservation to lapse", func() bool { return cc.State().Reserved == 0 })
	if !cc.TryReserve() {
		t.Fatal("no slot after the lapse")
	}
	cc.Close()
	if cc.TryReserve() {
		t.Fatal("reservation on a closed connection")
	}
}

// rawServer accepts one connection and speaks frames to our client.
func rawServer(t *testing.T, script func(fr *xhttp2.Framer, enc func(fields ...string) []byte)) string {
	ln, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conn net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		buf := make([]byte, len(xhttp2.ClientPreface))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		fr := xhttp2.NewFramer(c, c)
		fr.WriteSettings()
		var hbuf []byte
		var w hpackBuf
		e := hpack.NewEncoder(&w)
		script(fr, func(fields ...string) []byte {
			w.b = hbuf[:0]
			for i := 0; i+1 < len(fields); i += 2 {
				e.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
			}
			return w.b
		})
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

type hpackBuf struct{ b []byte }

func (w *hpackBuf) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func TestClientGoAwayUnprocessed(t *testing.T) {
	gotFirst := make(chan struct{})
	addr := rawServer(t, func(fr *xhttp2.Framer, enc func(...string) []byte) {
		var ids []uint32
		for len(ids) < 2 {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if h, ok := f.(*xhttp2.HeadersFrame); ok {
				ids = append(ids, h.StreamID)
				if len(ids) == 1 {
					close(gotFirst)
				}
			}
		}
		fr.WriteGoAway(ids[0], ErrCodeNo, []byte("bye"))
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: ids[0], BlockFragment: enc(":status", "204"), EndStream: true, EndHeaders: true})
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	})
	cc := dialClient(t, addr, Config{})
	first := make(chan error, 1)
	go func() {
		resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/1"))
		if err == nil && resp.Status != 204 {
			err = errors.New("unexpected status")
		}
		first <- err
	}()
	<-gotFirst
	_, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/2"))
	var ge *GoAwayError
	if !errors.As(err, &ge) || !IsUnprocessed(err) || ge.Debug != "bye" {
		t.Fatalf("stream above GOAWAY's last id: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("stream below GOAWAY's last id: %v", err)
	}
}

func TestClientRefusedStream(t *testing.T) {
	addr := rawServer(t, func(fr *xhttp2.Framer, enc func(...string) []byte) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if h, ok := f.(*xhttp2.HeadersFrame); ok {
				fr.WriteRSTStream(h.StreamID, ErrCodeRefusedStream)
			}
		}
	})
	cc := dialClient(t, addr, Config{})
	_, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
	if !IsUnprocessed(err) {
		t.Fatalf("refused stream: %v", err)
	}
	eventually(t, "the slot to free", func() bool { return cc.State().ActiveStreams == 0 })
}

// pingCounter is a client's connection that counts the PINGs (not the
// acknowledgements) the server sends, by parsing a copy of what the
// client reads.
type pingCounter struct {
	net.Conn
	pw    *io.PipeWriter
	pings atomic.Int64
	done  chan struct{}
}

func newPingCounter(c net.Conn) *pingCounter {
	pr, pw := io.Pipe()
	pc := &pingCounter{Conn: c, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(pc.done)
		fr := xhttp2.NewFramer(nil, pr)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				pr.CloseWithError(err)
				return
			}
			if p, ok := f.(*xhttp2.PingFrame); ok && !p.IsAck() {
				pc.pings.Add(1)
			}
		}
	}()
	return pc
}

func (pc *pingCounter) Read(p []byte) (int, error) {
	n, err := pc.Conn.Read(p)
	if n > 0 {
		pc.pw.Write(p[:n])
	}
	if err != nil {
		pc.pw.CloseWithError(err)
	}
	return n, err
}

// wait waits for the parsing goroutine, once the connection is closed.
func (pc *pingCounter) wait() {
	pc.pw.Close()
	<-pc.done
}

// breakable is a client's transport whose reads, once broken, fail with
// err (io.EOF: the transport's clean end).
type breakable struct {
	net.Conn
	mu  sync.Mutex
	err error // set when the server breaks it
}

func (b *breakable) Read(p []byte) (int, error) {
	n, err := b.Conn.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err != nil {
		err = b.err
	}
	return n, err
}

// TestClientTransportLost checks what a stream sees when its connection's
// transport goes: a clean end (EOF) is ErrClosed; any other failure a
// *TransportError wrapping it, even one that is itself a *StreamError (the
// transport an HBONE tunnel, reset), which a caller must not take for its
// own stream's reset. The server is on 127.0.0.1.
func TestClientTransportLost(t *testing.T) {
	tunnelReset := &StreamError{StreamID: 7, Code: ErrCodeConnect, Remote: true}
	for _, tc := range []struct {
		name      string
		err       error
		closed    bool // ErrClosed
		transport bool // a *TransportError
	}{
		{"the transport ends", io.EOF, true, false},
		{"the transport is reset", errors.New("connection reset by peer"), false, true},
		{"the transport, a tunnel, is reset", tunnelReset, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			srv, err := ln.Accept()
			ln.Close()
			if err != nil {
				t.Fatal(err)
			}
			b := &breakable{Conn: nc}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer srv.Close()
				buf := make([]byte, len(xhttp2.ClientPreface))
				if _, err := io.ReadFull(srv, buf); err != nil {
					return
				}
				fr := xhttp2.NewFramer(srv, srv)
				fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					if _, ok := f.(*xhttp2.HeadersFrame); ok {
						b.mu.Lock()
						b.err = tc.err
						b.mu.Unlock()
						return // srv.Close ends the client's read
					}
				}
			}()
			cc, err := NewClientConn(b, Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(wg.Wait)
			t.Cleanup(func() { cc.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = cc.RoundTrip(ctx, newRequest("GET", "example.com", "/"))
			var te *TransportError
			if got := errors.Is(err, ErrClosed); got != tc.closed {
				t.Errorf("error %v: ErrClosed %v, want %v", err, got, tc.closed)
			}
			if got := errors.As(err, &te); got != tc.transport {
				t.Errorf("error %v: *TransportError %v, want %v", err, got, tc.transport)
			}
			if tc.transport && !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap the transport's %v", err, tc.err)
			}
			if IsUnprocessed(err) {
				t.Errorf("error %v taken for an unprocessed stream", err)
			}
		})
	}
}

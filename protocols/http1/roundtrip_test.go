package http1

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// safety bounds every test connection so that a codec bug fails a test
// instead of hanging it; no test asserts on time.
const safety = 60 * time.Second

// listen returns a listener on the loopback address 127.0.20.host.
func listen(t *testing.T, host int) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.20.%d:0", host))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dial connects to addr from 127.0.20.100, so that both ends of every
// test connection are in the range given to this package.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 20, 100)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(safety))
	return conn
}

// serveCodec serves every connection accepted on ln with a ServerConn,
// calling handle for each request, until the test ends; it counts the
// connections accepted.
func serveCodec(t *testing.T, ln net.Listener, cfg ServerConfig, handle func(c *ServerConn, req *l7.Request) error) *int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		n     int
	)
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			n++
			mu.Unlock()
			_ = conn.SetDeadline(time.Now().Add(safety))
			wg.Go(func() {
				defer conn.Close()
				c := NewServerConn(conn, cfg)
				var req l7.Request
				for {
					err := c.ReadRequest(&req)
					if err != nil {
						if !errors.Is(err, io.EOF) {
							_ = c.WriteError(err)
						}
						return
					}
					if err := handle(c, &req); err != nil {
						t.Errorf("handler: %v", err)
						return
					}
					if !c.KeepAlive() {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &n
}

// pattern is a deterministic body of n bytes.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off == p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternSum(n int64) string {
	h := sha256.New()
	io.Copy(h, &pattern{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// echoSum is the round-trip handler: it hashes the request body and
// answers with a pattern body of x-resp-size bytes (chunked if asked),
// the hash and length in fields, and the request's trailer echoed as a
// response trailer.
func echoSum(c *ServerConn, req *l7.Request) error {
	h := sha256.New()
	var n int64
	if req.Body != nil {
		var err error
		if n, err = io.Copy(h, req.Body); err != nil {
			return err
		}
	}
	size, _ := strconv.ParseInt(req.Header.GetString("x-resp-size"), 10, 64)
	resp := &l7.Response{Status: 200, ContentLength: size, Body: &pattern{n: size}}
	if req.Header.GetString("x-resp-chunked") == "1" {
		resp.ContentLength = -1
		v, ok := req.Trailer.Get("x-req-trailer")
		if !ok {
			v = []byte("none")
		}
		resp.Trailer.Add("x-resp-trailer", string(v))
	}
	resp.Header.Add("x-req-len", strconv.FormatInt(n, 10))
	resp.Header.Add("x-req-sum", hex.EncodeToString(h.Sum(nil)))
	return c.WriteResponse(req, resp)
}

func TestRoundTripLoopback(t *testing.T) {
	ln := listen(t, 1)
	accepted := serveCodec(t, ln, ServerConfig{}, echoSum)
	conn := dial(t, ln.Addr().String())
	defer conn.Close()
	c := NewClientConn(conn, ClientConfig{})

	sums := map[int64]string{}
	for _, size := range []int64{0, 1, 64 << 10, 8 << 20} {
		sums[size] = patternSum(size)
		for _, reqChunked := range []bool{false, true} {
			for _, respChunked := range []bool{false, true} {
				name := fmt.Sprintf("%d bytes, chunked request %v, chunked response %v", size, reqChunked, respChunked)
				t.Run(name, func(t *testing.T) {
					req := &l7.Request{Method: "POST", Authority: []byte("svc"), Path: []byte("/up"),
						ContentLength: size, Body: &pattern{n: size}}
					req.Header.Add("x-resp-size", strconv.FormatInt(size, 10))
					if reqChunked {
						req.ContentLength = -1
						req.Trailer.Add("x-req-trailer", "t"+strconv.FormatInt(size, 10))
					}
					if respChunked {
						req.Header.Add("x-resp-chunked", "1")
					}
					if err := c.WriteRequest(req); err != nil {
						t.Fatal(err)
					}
					var resp l7.Response
					if err := c.ReadResponse(req, &resp); err != nil {
						t.Fatal(err)
					}
					h := sha256.New()
					var n int64
					if resp.Body != nil {
						var err error
						if n, err = io.Copy(h, resp.Body); err != nil {
							t.Fatal(err)
						}
					}
					if n != size || hex.EncodeToString(h.Sum(nil)) != sums[size] {
						t.Errorf("response body: %d bytes, sum mismatch %v", n, hex.EncodeToString(h.Sum(nil)) != sums[size])
					}
					if got := resp.Header.GetString("x-req-len"); got != strconv.FormatInt(size, 10) {
						t.Errorf("server read %s request bytes, want %d", got, size)
					}
					if got := resp.Header.GetString("x-req-sum"); got != sums[size] {
						t.Errorf("request body corrupted on the way")
					}
					wantTrailer := ""
					if respChunked {
						wantTrailer = "none"
						if reqChunked {
							wantTrailer = "t" + strconv.FormatInt(size, 10)
						}
					}
					if got := resp.Trailer.GetString("x-resp-trailer"); got != wantTrailer {
						t.Errorf("response trailer %q, want %q", got, wantTrailer)
					}
					if !c.Reusable() {
						t.Fatal("connection not reusable after a complete exchange")
					}
				})
			}
		}
	}
	if *accepted != 1 {
		t.Errorf("%d connections for all exchanges, want 1 kept alive", *accepted)
	}
}

// gate returns "first", then blocks until released, then returns
// "second" and io.EOF.
type gate struct {
	release chan struct{}
	step    int
}

func (g *gate) Read(p []byte) (int, error) {
	g.step++
	switch g.step {
	case 1:
		return copy(p, "first"), nil
	case 2:
		<-g.release
		return copy(p, "second"), io.EOF
	}
	return 0, io.EOF
}

func TestStreamedResponse(t *testing.T) {
	for _, length := range []int64{-1, 11} {
		t.Run("content-length "+strconv.FormatInt(length, 10), func(t *testing.T) {
			release := make(chan struct{})
			ln := listen(t, 2)
			serveCodec(t, ln, ServerConfig{}, func(c *ServerConn, req *l7.Request) error {
				return c.WriteResponse(req, &l7.Response{Status: 200, ContentLength: length, Body: &gate{release: release}})
			})
			conn := dial(t, ln.Addr().String())
			defer conn.Close()
			c := NewClientConn(conn, ClientConfig{})
			req := &l7.Request{Method: "GET", Authority: []byte("svc"), Path: []byte("/stream")}
			if err := c.WriteRequest(req); err != nil {
				t.Fatal(err)
			}
			var resp l7.Response
			if err := c.ReadResponse(req, &resp); err != nil {
				close(release)
				t.Fatal(err)
			}
			first := make([]byte, 5)
			_, err := io.ReadFull(resp.Body, first)
			close(release) // the server holds the rest of the body until now
			if err != nil || string(first) != "first" {
				t.Fatalf("first piece %q, %v", first, err)
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "second" {
				t.Fatalf("rest %q, %v", rest, err)
			}
		})
	}
}

func TestUpgradeLoopback(t *testing.T) {
	ln := listen(t, 3)
	serveCodec(t, ln, ServerConfig{}, func(c *ServerConn, req *l7.Request) error {
		if req.Protocol != "echo" {
			return fmt.Errorf("protocol %q", req.Protocol)
		}
		if err := c.WriteResponse(req, &l7.Response{Status: 101}); err != nil {
			return err
		}
		rw, buffered := c.Hijack()
		io.Copy(rw, io.MultiReader(bytes.NewReader(buffered), rw)) // until the client goes
		return nil
	})
	conn := dial(t, ln.Addr().String())
	defer conn.Close()
	c := NewClientConn(conn, ClientConfig{})
	req := &l7.Request{Method: "GET", Protocol: "echo", Authority: []byte("svc"), Path: []byte("/")}
	if err := c.WriteRequest(req); err != nil {
		t.Fatal(err)
	}
	var resp l7.Response
	if err := c.ReadResponse(req, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 101 || c.Reusable() {
		t.Fatalf("status %d, reusable %v", resp.Status, c.Reusable())
	}
	rw, buffered := c.Hijack()
	if len(buffered) != 0 {
		t.Errorf("buffered %q", buffered)
	}
	if _, err := rw.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(rw, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestIdleTimeout(t *testing.T) {
	ln := listen(t, 4)
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		c := NewServerConn(conn, ServerConfig{IdleTimeout: 20 * time.Millisecond})
		var req l7.Request
		errc <- c.ReadRequest(&req)
	}()
	conn := dial(t, ln.Addr().String())
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\n")); err != nil { // and nothing more
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadRequest on a stalled head: %v, want a deadline error", err)
	}
}

// TestFullDuplex reads a request body (which sends 100 Continue) in one
// goroutine while the response is written in another: the race detector
// checks what they share, and the client checks that the 100 and the
// response never interleave.
func TestFullDuplex(t *testing.T) {
	ln := listen(t, 5)
	serveCodec(t, ln, ServerConfig{}, func(c *ServerConn, req *l7.Request) error {
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, req.Body)
			done <- err
		}()
		werr := c.WriteResponse(req, okResponse("answer"))
		if err := <-done; err != nil {
			return err
		}
		return werr
	})
	for i := range 20 {
		conn := dial(t, ln.Addr().String())
		c := NewClientConn(conn, ClientConfig{})
		req := &l7.Request{Method: "POST", Authority: []byte("svc"), Path: []byte("/"),
			ContentLength: -1, Body: &pattern{n: 100 << 10}}
		req.Header.Add("expect", "100-continue")
		if err := c.WriteRequest(req); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		var resp l7.Response
		if err := c.ReadResponse(req, &resp); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if m := responseModel(t, &resp); m.Status != 200 || m.Body != "answer" {
			t.Fatalf("exchange %d: %d %q", i, m.Status, m.Body)
		}
		// Wait for the server to finish the exchange (its handler may still
		// be reading the body) before closing: half-close and read to EOF.
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn)
		conn.Close()
	}
}

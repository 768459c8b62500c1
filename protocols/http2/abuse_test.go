package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// countingConn counts the bytes the server reads.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// oneServer serves exactly one connection with ServeConn; its result
// comes on done. smallBuffers shrinks the server's socket send buffer so
// that a peer that does not read blocks it quickly.
type oneServer struct {
	addr string
	conn atomic.Pointer[countingConn]
	done chan error
}

// smallSocketBuffers shrinks a socket's send and receive buffers before
// it connects or listens (accepted sockets inherit the listener's).
func smallSocketBuffers(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096); serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func serveOne(t *testing.T, cfg Config, h Handler, smallBuffers bool) *oneServer {
	return serveOneWrapped(t, cfg, h, smallBuffers, nil)
}

// recordConn is a connection that claims to be a TLS one (recordReader),
// so that the engine reads large DATA payloads straight from it.
type recordConn struct{ io.ReadWriteCloser }

func (recordConn) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// serveOneWrapped is serveOne serving wrap(conn) when wrap is not nil.
func serveOneWrapped(t *testing.T, cfg Config, h Handler, smallBuffers bool, wrap func(io.ReadWriteCloser) io.ReadWriteCloser) *oneServer {
	lc := net.ListenConfig{}
	if smallBuffers {
		lc.Control = smallSocketBuffers
	}
	ln, err := lc.Listen(context.Background(), "tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &oneServer{addr: ln.Addr().String(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			s.done <- err
			return
		}
		cc := &countingConn{Conn: c}
		s.conn.Store(cc)
		var rwc io.ReadWriteCloser = cc
		if wrap != nil {
			rwc = wrap(cc)
		}
		s.done <- ServeConn(ctx, rwc, cfg, h)
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		if c := s.conn.Load(); c != nil {
			c.Close()
		}
		wg.Wait()
	})
	return s
}

// rawClient speaks HTTP/2 frame by frame.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fr   *xhttp2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func dialRaw(t *testing.T, addr string, smallBuffers bool) *rawClient {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(testHost)}}
	if smallBuffers {
		// Set before connecting, so that the window the client advertises
		// is small from the start: a peer that does not read must soon
		// block the server's writes, however slowly it sends.
		d.Control = smallSocketBuffers
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, fr: xhttp2.NewFramer(conn, conn)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.AllowIllegalWrites = true
	c.fr.AllowIllegalReads = true
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, xhttp2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// block encodes a request header block: a GET of / plus extra fields.
func (c *rawClient) block(extra ...string) []byte {
	c.hbuf.Reset()
	c.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
	c.enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	c.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "example.com"})
	c.enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
	for i := 0; i+1 < len(extra); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return append([]byte(nil), c.hbuf.Bytes()...)
}

func (c *rawClient) headers(id uint32, endStream bool, extra ...string) {
	if err := c.tryHeaders(id, endStream, extra...); err != nil {
		c.t.Fatal(err)
	}
}

// tryHeaders is headers for attack goroutines, which must not call
// t.Fatal: the server may close the connection under them.
func (c *rawClient) tryHeaders(id uint32, endStream bool, extra ...string) error {
	return c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(extra...), EndStream: endStream, EndHeaders: true})
}

// readUntil reads frames until match returns true or the connection
// ends; it returns the matching frame (nil at the end).
func (c *rawClient) readUntil(match func(xhttp2.Frame) bool) xhttp2.Frame {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil
		}
		if match(f) {
			return f
		}
	}
}

func isGoAway(code ErrCode) func(xhttp2.Frame) bool {
	return func(f xhttp2.Frame) bool {
		g, ok := f.(*xhttp2.GoAwayFrame)
		return ok && g.ErrCode == code
	}
}

func isRST(id uint32, code ErrCode) func(xhttp2.Frame) bool {
	return func(f xhttp2.Frame) bool {
		r, ok := f.(*xhttp2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == code
	}
}

// waitHandler holds every stream until its context ends.
var waitHandler = HandlerFunc(func(st *ServerStream) { <-st.Context().Done() })

// connErrCode extracts the code of ServeConn's ConnError result.
func connErrCode(err error) (ErrCode, bool) {
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}

func TestAbuse(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		handler      Handler
		smallBuffers bool
		// attack runs against the connection and checks what it sees.
		attack func(t *testing.T, c *rawClient, s *oneServer)
		// wantCode is the ConnError code ServeConn must end with; 0
		// means the connection must survive the attack.
		wantCode ErrCode
		// wantDefence is the Defence of that ConnError (DefenceOf).
		wantDefence Defence
	}{{
		name:    "rapid reset",
		handler: waitHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			go func() {
				for id := uint32(1); id < 2000; id += 2 {
					if err := c.tryHeaders(id, false); err != nil {
						return
					}
					if err := c.fr.WriteRSTStream(id, ErrCodeCancel); err != nil {
						return
					}
				}
			}()
			g, _ := c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)).(*xhttp2.GoAwayFrame)
			if g == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
			if g.LastStreamID >= 1999 {
				t.Fatalf("GOAWAY after all 1000 streams (last %d)", g.LastStreamID)
			}
			if c.readUntil(func(xhttp2.Frame) bool { return false }) != nil {
				t.Fatal("connection still open")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefencePrematureResets,
	}, {
		name:    "continuation flood",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			first := c.block()
			go func() {
				if err := c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: first}); err != nil {
					return
				}
				// Each fragment repeats an indexed field: a valid block
				// that never ends.
				frag := bytes.Repeat([]byte{0x82}, 1000)
				for {
					if err := c.fr.WriteContinuation(1, false, frag); err != nil {
						return
					}
				}
			}()
			if c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)) == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
			if n := s.conn.Load().read.Load(); n > 4*DefaultMaxHeaderListSize {
				t.Fatalf("server read %d bytes of a header block", n)
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceHeaderOverflow,
	}, {
		name:    "empty continuation flood",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block()})
			go func() {
				for {
					if err := c.fr.WriteContinuation(1, false, nil); err != nil {
						return
					}
				}
			}()
			if c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)) == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceEmptyFrames,
	}, {
		name:         "ping flood without reading",
		handler:      okHandler,
		smallBuffers: true,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			var err error
			i := 0
			for ; i < 2_000_000 && err == nil; i++ {
				err = c.fr.WritePing(false, [8]byte{1})
			}
			if err == nil {
				t.Fatal("the server took 2M PINGs without closing")
			}
			t.Logf("client stopped after %d PINGs: %v", i, err)
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceOutboundControlFlood,
	}, {
		name:         "settings flood without reading",
		handler:      okHandler,
		smallBuffers: true,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			var err error
			for i := 0; i < 2_000_000 && err == nil; i++ {
				err = c.fr.WriteSettings(xhttp2.Setting{ID: xhttp2.SettingMaxHeaderListSize, Val: 1 << 20})
			}
			if err == nil {
				t.Fatal("the server took 2M SETTINGS without closing")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceOutboundControlFlood,
	}, {
		name:    "empty data flood",
		handler: waitHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.headers(1, false)
			for i := 0; i < 10; i++ {
				if err := c.fr.WriteData(1, false, nil); err != nil {
					break
				}
			}
			if c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)) == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceEmptyFrames,
	}, {
		name:    "priority flood",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			go func() {
				for i := 0; i < 1000; i++ {
					if err := c.fr.WritePriority(3, xhttp2.PriorityParam{StreamDep: 1, Weight: 10}); err != nil {
						return
					}
				}
			}()
			if c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)) == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefencePriorityFlood,
	}, {
		name:    "window update flood",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			go func() {
				for i := 0; i < 1000; i++ {
					if err := c.fr.WriteWindowUpdate(0, 1); err != nil {
						return
					}
				}
			}()
			if c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)) == nil {
				t.Fatal("no GOAWAY(ENHANCE_YOUR_CALM)")
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceWindowUpdateFlood,
	}, {
		name:    "stream window overflow",
		handler: waitHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.headers(1, false)
			chunk := make([]byte, 16384)
			for sent := 0; sent <= DefaultInitialStreamWindow; sent += len(chunk) {
				c.fr.WriteData(1, false, chunk)
			}
			if c.readUntil(isRST(1, ErrCodeFlowControl)) == nil {
				t.Fatal("no RST_STREAM(FLOW_CONTROL_ERROR)")
			}
			// The connection lives on.
			c.fr.WritePing(false, [8]byte{7})
			if c.readUntil(func(f xhttp2.Frame) bool { p, ok := f.(*xhttp2.PingFrame); return ok && p.IsAck() }) == nil {
				t.Fatal("connection died")
			}
		},
	}, {
		name:    "connection window overflow",
		handler: waitHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			chunk := make([]byte, 16384)
			sent := 0
			for id := uint32(1); sent <= DefaultInitialConnWindow; id += 2 {
				c.headers(id, false)
				for i := 0; i < 4 && sent <= DefaultInitialConnWindow; i++ {
					c.fr.WriteData(id, false, chunk)
					sent += len(chunk)
				}
			}
			if c.readUntil(isGoAway(ErrCodeFlowControl)) == nil {
				t.Fatal("no GOAWAY(FLOW_CONTROL_ERROR)")
			}
		},
		wantCode:    ErrCodeFlowControl,
		wantDefence: DefenceNone,
	}, {
		name: "handler closes the connection",
		handler: HandlerFunc(func(st *ServerStream) {
			st.CloseConn("too many refused streams")
			st.CloseConn("a second call does nothing")
			<-st.Context().Done()
		}),
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.headers(1, false)
			g, _ := c.readUntil(isGoAway(ErrCodeEnhanceYourCalm)).(*xhttp2.GoAwayFrame)
			if g == nil || string(g.DebugData()) != "too many refused streams" {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM with the reason", g)
			}
		},
		wantCode:    ErrCodeEnhanceYourCalm,
		wantDefence: DefenceRefusedStreams,
	}, {
		name:    "send window overflow",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.fr.WriteWindowUpdate(0, 1<<31-1)
			if c.readUntil(isGoAway(ErrCodeFlowControl)) == nil {
				t.Fatal("no GOAWAY(FLOW_CONTROL_ERROR)")
			}
		},
		wantCode:    ErrCodeFlowControl,
		wantDefence: DefenceNone,
	}, {
		name:    "too many streams",
		cfg:     Config{MaxConcurrentStreams: 10},
		handler: waitHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			for id := uint32(1); id <= 21; id += 2 {
				c.headers(id, false)
			}
			if c.readUntil(isRST(21, ErrCodeRefusedStream)) == nil {
				t.Fatal("11th stream not refused")
			}
			// A slot frees when a stream ends.
			c.fr.WriteRSTStream(1, ErrCodeCancel)
			c.headers(23, false)
			c.fr.WritePing(false, [8]byte{9})
			f := c.readUntil(func(f xhttp2.Frame) bool {
				if p, ok := f.(*xhttp2.PingFrame); ok && p.IsAck() {
					return true
				}
				r, ok := f.(*xhttp2.RSTStreamFrame)
				return ok && r.StreamID == 23
			})
			if _, ok := f.(*xhttp2.PingFrame); !ok {
				t.Fatalf("stream 23 refused after a slot freed: %v", f)
			}
		},
	}, {
		name:    "header list over the limit",
		handler: okHandler,
		attack: func(t *testing.T, c *rawClient, s *oneServer) {
			c.headers(1, false) // a request in flight on the same connection
			big := c.block("x-big", strings.Repeat("a", 30<<10), "x-big2", strings.Repeat("b", 31<<10))
			c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, BlockFragment: big[:16384], EndStream: true})
			for rest := big[16384:]; len(rest) > 0; {
				n := min(len(rest), 16384)
				c.fr.WriteContinuation(3, n == len(rest), rest[:n])
				rest = rest[n:]
			}
			c.fr.WriteData(1, true, []byte("body"))
			c.headers(5, true)
			statuses := map[uint32]string{}
			dec := hpack.NewDecoder(4096, nil)
			c.readUntil(func(f xhttp2.Frame) bool {
				if h, ok := f.(*xhttp2.HeadersFrame); ok {
					fields, err := dec.DecodeFull(h.HeaderBlockFragment())
					if err != nil {
						t.Fatal(err)
					}
					statuses[h.StreamID] = fields[0].Value
				}
				return len(statuses) == 3
			})
			want := map[uint32]string{1: "200", 3: "431", 5: "200"}
			for id, st := range want {
				if statuses[id] != st {
					t.Fatalf("statuses %v, want %v", statuses, want)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serveOne(t, tt.cfg, tt.handler, tt.smallBuffers)
			c := dialRaw(t, s.addr, tt.smallBuffers)
			tt.attack(t, c, s)
			if tt.wantCode == 0 {
				return
			}
			c.conn.SetReadDeadline(time.Now())
			select {
			case err := <-s.done:
				if code, ok := connErrCode(err); !ok || code != tt.wantCode {
					t.Fatalf("ServeConn returned %v, want a %v connection error", err, tt.wantCode)
				}
				if d := DefenceOf(err); d != tt.wantDefence {
					t.Fatalf("DefenceOf(%v) = %v, want %v", err, d, tt.wantDefence)
				}
			case <-time.After(10 * time.Second):
				var buf bytes.Buffer
				pprof.Lookup("goroutine").WriteTo(&buf, 1)
				var read int64
				if c := s.conn.Load(); c != nil {
					read = c.read.Load()
				}
				t.Fatalf("ServeConn did not return (server read %d bytes); goroutines:\n%s", read, buf.String())
			}
		})
	}
	_ = l7.HTTP2
}

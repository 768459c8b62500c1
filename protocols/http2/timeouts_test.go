package http2

import (
	"bytes"
	"context"
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

// Addresses of the timeout tests: 127.0.203.0/24.
const timeoutsHost = "127.0.203.1"

// serveTimeouts serves one connection on timeoutsHost under ctx; its
// result comes on done.
func serveTimeouts(t *testing.T, ctx context.Context, cfg Config, h Handler) (addr string, done <-chan error) {
	ln, err := net.Listen("tcp", timeoutsHost+":0")
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

// dialTimeouts is dialRaw for serveTimeouts' address.
func dialTimeouts(t *testing.T, addr string) *rawClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, fr: xhttp2.NewFramer(conn, conn)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.AllowIllegalWrites = true
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, xhttp2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// readAllOK answers every stream 200, after reading its request.
var readAllOK = HandlerFunc(func(st *ServerStream) {
	if b := st.Request().Body; b != nil {
		io.Copy(io.Discard, b)
	}
	st.WriteResponse(&l7.Response{Status: 200})
})

// isHeadersStatus matches response HEADERS on stream id with :status
// status; it decodes every header block with dec, the connection's
// decoder, so that blocks are read in order.
func isHeadersStatus(dec *hpack.Decoder, id uint32, status string) func(xhttp2.Frame) bool {
	return func(f xhttp2.Frame) bool {
		h, ok := f.(*xhttp2.HeadersFrame)
		if !ok {
			return false
		}
		fields, err := dec.DecodeFull(h.HeaderBlockFragment())
		return err == nil && h.StreamID == id && len(fields) > 0 && fields[0].Name == ":status" && fields[0].Value == status
	}
}

// TestRequestHeadersTimeout: a request whose header block stops half way
// (HEADERS without END_HEADERS) is answered 408 and reset with NO_ERROR
// once RequestHeadersTimeout passes, the hook is told; the block, when it
// completes, is dropped (the handler never sees it) and the connection
// serves the next stream. A block that comes whole is not affected.
func TestRequestHeadersTimeout(t *testing.T) {
	var fired atomic.Int32
	var served atomic.Int32
	h := HandlerFunc(func(st *ServerStream) {
		served.Add(1)
		readAllOK(st)
	})
	cfg := Config{RequestHeadersTimeout: 200 * time.Millisecond, OnRequestHeadersTimeout: func() { fired.Add(1) }}
	addr, _ := serveTimeouts(t, context.Background(), cfg, h)
	c := dialTimeouts(t, addr)
	dec := hpack.NewDecoder(4096, nil)

	block := c.block()
	half := len(block) / 2
	if err := c.fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:half], EndStream: true}); err != nil {
		t.Fatal(err)
	}
	if c.readUntil(isHeadersStatus(dec, 1, "408")) == nil {
		t.Fatal("no 408 on the stream whose headers stopped")
	}
	if c.readUntil(isRST(1, ErrCodeNo)) == nil {
		t.Fatal("no RST_STREAM(NO_ERROR) after the 408")
	}
	if fired.Load() != 1 {
		t.Fatalf("OnRequestHeadersTimeout called %d times, want 1", fired.Load())
	}
	// The rest of the block: decoded, dropped.
	if err := c.fr.WriteContinuation(1, true, block[half:]); err != nil {
		t.Fatal(err)
	}
	// A whole block on the next stream is served.
	c.headers(3, true)
	if c.readUntil(isHeadersStatus(dec, 3, "200")) == nil {
		t.Fatal("the next stream was not served")
	}
	if served.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1 (the late block dropped)", served.Load())
	}
	if fired.Load() != 1 {
		t.Fatalf("OnRequestHeadersTimeout called %d times, want 1", fired.Load())
	}
}

// TestShutdownNotice: a shutdown whose cause is ErrShutdownNotice sends
// GOAWAY with the last stream id 2^31-1, serves a stream opened after it,
// then sends the final GOAWAY with that stream's id and closes; any other
// shutdown sends the final GOAWAY at once.
func TestShutdownNotice(t *testing.T) {
	cases := []struct {
		name   string
		cause  error
		notice bool
	}{
		{"notice", ErrShutdownNotice, true},
		{"plain cancel", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			addr, done := serveTimeouts(t, ctx, Config{ShutdownNotice: 300 * time.Millisecond}, readAllOK)
			c := dialTimeouts(t, addr)
			dec := hpack.NewDecoder(4096, nil)
			c.headers(1, true)
			if c.readUntil(isHeadersStatus(dec, 1, "200")) == nil {
				t.Fatal("stream 1 not served")
			}
			cancel(tc.cause)
			g, _ := c.readUntil(func(f xhttp2.Frame) bool { _, ok := f.(*xhttp2.GoAwayFrame); return ok }).(*xhttp2.GoAwayFrame)
			if g == nil {
				t.Fatal("no GOAWAY")
			}
			if !tc.notice {
				if g.LastStreamID != 1 || g.ErrCode != ErrCodeNo {
					t.Fatalf("GOAWAY last %d %v, want 1 NO_ERROR", g.LastStreamID, g.ErrCode)
				}
				if err := <-done; err != nil {
					t.Fatalf("ServeConn: %v", err)
				}
				return
			}
			if g.LastStreamID != lastStreamIDNotice || g.ErrCode != ErrCodeNo {
				t.Fatalf("notice GOAWAY last %d %v, want 2^31-1 NO_ERROR", g.LastStreamID, g.ErrCode)
			}
			// A stream racing the notice is still served.
			c.headers(3, true)
			if c.readUntil(isHeadersStatus(dec, 3, "200")) == nil {
				t.Fatal("a stream sent after the notice was not served")
			}
			final, _ := c.readUntil(func(f xhttp2.Frame) bool { _, ok := f.(*xhttp2.GoAwayFrame); return ok }).(*xhttp2.GoAwayFrame)
			if final == nil || final.LastStreamID != 3 {
				t.Fatalf("final GOAWAY %v, want last stream 3", final)
			}
			if _, err := c.fr.ReadFrame(); err == nil {
				t.Fatal("connection still open after the final GOAWAY")
			}
			if err := <-done; err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
		})
	}
}

// TestCancelContext: the handler cancels its stream's context, which
// ends, and still answers on the stream.
func TestCancelContext(t *testing.T) {
	addr, _ := serveTimeouts(t, context.Background(), Config{}, HandlerFunc(func(st *ServerStream) {
		st.CancelContext()
		<-st.Context().Done()
		st.WriteResponse(&l7.Response{Status: 504, Body: bytes.NewReader([]byte("late")), ContentLength: 4})
	}))
	c := dialTimeouts(t, addr)
	dec := hpack.NewDecoder(4096, nil)
	c.headers(1, true)
	if c.readUntil(isHeadersStatus(dec, 1, "504")) == nil {
		t.Fatal("no answer after CancelContext")
	}
}

// TestResetAsync: a stream reset from another goroutine with ResetAsync
// gets its RST_STREAM, and the handler's writes fail from then on.
func TestResetAsync(t *testing.T) {
	writeErr := make(chan error, 1)
	addr, _ := serveTimeouts(t, context.Background(), Config{}, HandlerFunc(func(st *ServerStream) {
		if err := st.WriteHeaders(&l7.Response{Status: 200}, false); err != nil {
			writeErr <- err
			return
		}
		done := make(chan struct{})
		go func() { defer close(done); st.ResetAsync(ErrCodeNo) }()
		<-done
		_, err := st.Write([]byte("after"))
		writeErr <- err
	}))
	c := dialTimeouts(t, addr)
	dec := hpack.NewDecoder(4096, nil)
	c.headers(1, true)
	if c.readUntil(isHeadersStatus(dec, 1, "200")) == nil {
		t.Fatal("no response headers")
	}
	if c.readUntil(isRST(1, ErrCodeNo)) == nil {
		t.Fatal("no RST_STREAM(NO_ERROR)")
	}
	if err := <-writeErr; err == nil {
		t.Fatal("a write after the reset succeeded")
	}
}

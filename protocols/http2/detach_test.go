package http2

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// TestServerDetachedStream: a handler that detaches its stream returns at
// once; the stream is then served without a goroutine waiting on it
// (SetReadNotify, TryRead) and ServeConn waits for finish.
func TestServerDetachedStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan func(), 1)
	handlerReturned := make(chan struct{}, 1)
	addr, done := serveCtx(t, ctx, Config{}, HandlerFunc(func(st *ServerStream) {
		finish := st.Detach()
		if err := st.WriteHeaders(&l7.Response{Status: 200}, false); err != nil {
			t.Error(err)
		}
		// Echo on notification, from the connection's read loop: the
		// handler's goroutine is gone by then.
		st.SetReadNotify(func() {
			buf := make([]byte, 64)
			for {
				n, err := st.TryRead(buf)
				if n > 0 {
					st.Write(buf[:n])
				}
				if err == io.EOF {
					st.CloseWrite()
					finished <- finish
					return
				}
				if n == 0 {
					return
				}
			}
		})
		handlerReturned <- struct{}{}
	}))
	cc := dialClient(t, addr, Config{})
	pr, pw := io.Pipe()
	req := newRequest("POST", "example.com", "/")
	req.Body = pr
	resp, err := cc.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	<-handlerReturned
	pw.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after the handler returned: %q, %v", got, err)
	}
	pw.Close()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("end of the echo: %q, %v", rest, err)
	}
	finish := <-finished
	cancel()
	select {
	case err := <-done:
		t.Fatalf("ServeConn returned (%v) before the detached stream finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	finish()
	if err := <-done; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

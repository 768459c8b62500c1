package http2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// peers are the servers our ClientConn is tested against.
func clientPeers(t *testing.T, early chan<- int64) map[string]string {
	return map[string]string{
		"xnet": startXNetServer(t, http.HandlerFunc(netEcho)),
		"ours": startServer(t, Config{MaxConcurrentStreams: 250}, routedHandler(early)).addr(),
	}
}

func TestClientBodies(t *testing.T) {
	for name, addr := range clientPeers(t, nil) {
		cc := dialClient(t, addr, Config{})
		for _, size := range []int{0, 1, 1 << 10, 16<<10 + 1, 64 << 10, 1 << 20, 8 << 20} {
			for _, known := range []bool{true, false} {
				for _, trailers := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%d/known=%v/trailers=%v", name, size, known, trailers), func(t *testing.T) {
						body := pattern(size)
						req := newRequest("POST", "example.com", "/echo")
						req.Header.Add("x-size", fmt.Sprint(size))
						req.Body = bytes.NewReader(body)
						if known {
							req.ContentLength = int64(size)
						}
						if trailers {
							req.Header.Add("trailer", "x-checksum")
							req.Trailer.Add("x-checksum", "abc")
						}
						resp, err := cc.RoundTrip(context.Background(), req)
						if err != nil {
							t.Fatal(err)
						}
						got, err := io.ReadAll(resp.Body)
						if err != nil {
							t.Fatal(err)
						}
						if resp.Status != 200 || !bytes.Equal(got, body) {
							t.Fatalf("status %d, %d bytes, want %d", resp.Status, len(got), size)
						}
						if v := resp.Header.GetString("x-size"); v != fmt.Sprint(size) {
							t.Fatalf("x-size %q", v)
						}
						want := ""
						if trailers {
							want = "abc"
						}
						if v := resp.Trailer.GetString("x-checksum"); v != want {
							t.Fatalf("trailer %q, want %q", v, want)
						}
					})
				}
			}
		}
		if st := cc.State(); st.ActiveStreams != 0 || st.Closed || st.GoAway {
			t.Fatalf("%s: state after the bodies: %+v", name, st)
		}
	}
}

// gate is a request body that sends "hello", then waits for every stream
// of the burst before sending its index.
type gate struct {
	i       int
	started *sync.WaitGroup
	step    int
	// allOpen, if set, runs once every gated body has started: no stream
	// can have ended yet.
	allOpen func()
}

func (g *gate) Read(p []byte) (int, error) {
	g.step++
	switch g.step {
	case 1:
		return copy(p, "hello"), nil
	case 2:
		g.started.Done()
		g.started.Wait()
		if g.allOpen != nil {
			g.allOpen()
		}
		return copy(p, fmt.Sprint(g.i)), nil
	}
	return 0, io.EOF
}

func TestClientConcurrentStreams(t *testing.T) {
	for name, addr := range clientPeers(t, nil) {
		t.Run(name, func(t *testing.T) {
			cc := dialClient(t, addr, Config{})
			const n = 200
			var started sync.WaitGroup
			started.Add(n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			maxActive := 0
			var mu sync.Mutex
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := newRequest("POST", "example.com", "/echo")
					req.Body = &gate{i: i, started: &started, allOpen: func() {
						mu.Lock()
						maxActive = max(maxActive, cc.State().ActiveStreams)
						mu.Unlock()
					}}
					resp, err := cc.RoundTrip(context.Background(), req)
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					if err != nil || string(got) != fmt.Sprint("hello", i) {
						errs <- fmt.Errorf("stream %d: %q, %v", i, got, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if maxActive != n {
				t.Errorf("at most %d streams active at once, want all %d", maxActive, n)
			}
			if st := cc.State(); st.ActiveStreams != 0 || st.MaxConcurrentStreams != 250 {
				t.Fatalf("state %+v", st)
			}
		})
	}
}

// TestClientFullDuplex: each chunk comes back before the next is sent,
// through RoundTrip with a pipe body, through OpenStream, and through a
// CONNECT tunnel.
func TestClientFullDuplex(t *testing.T) {
	for name, addr := range clientPeers(t, nil) {
		cc := dialClient(t, addr, Config{})
		for _, mode := range []string{"roundtrip", "stream", "connect"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				var w io.Writer
				var r io.Reader
				var closeWrite func() error
				switch mode {
				case "roundtrip":
					pr, pw := io.Pipe()
					req := newRequest("POST", "example.com", "/echo")
					req.Body = pr
					resp, err := cc.RoundTrip(context.Background(), req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.(io.Closer).Close()
					w, r, closeWrite = pw, resp.Body, pw.Close
				default:
					req := newRequest("POST", "example.com", "/echo")
					if mode == "connect" {
						req = &l7.Request{Method: "CONNECT", Authority: []byte("10.1.2.3:8080")}
					}
					cs, err := cc.OpenStream(context.Background(), req)
					if err != nil {
						t.Fatal(err)
					}
					defer cs.Close()
					resp, err := cs.Response()
					if err != nil || resp.Status != 200 {
						t.Fatalf("response %v %v", resp, err)
					}
					w, r, closeWrite = cs, cs, cs.CloseWrite
				}
				for i := 0; i < 10; i++ {
					chunk := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
					if _, err := w.Write(chunk); err != nil {
						t.Fatal(err)
					}
					got := make([]byte, len(chunk))
					if _, err := io.ReadFull(r, got); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, chunk) {
						t.Fatalf("chunk %d differs", i)
					}
				}
				if err := closeWrite(); err != nil {
					t.Fatal(err)
				}
				if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
					t.Fatalf("after CloseWrite: %q %v", rest, err)
				}
			})
		}
	}
}

// TestClientHalfClose: our side ends while the server still sends
// ("late", both servers); the server's side ends while we still send
// ("early", ours only: x/net's server cannot end a response before its
// handler returns).
func TestClientHalfClose(t *testing.T) {
	early := make(chan int64, 1)
	for name, addr := range clientPeers(t, early) {
		cc := dialClient(t, addr, Config{})
		t.Run(name+"/client", func(t *testing.T) {
			cs, err := cc.OpenStream(context.Background(), newRequest("POST", "example.com", "/late"))
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			body := pattern(100000)
			if _, err := cs.Write(body); err != nil {
				t.Fatal(err)
			}
			if err := cs.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.Write([]byte("x")); !errors.Is(err, ErrStreamDone) {
				t.Fatalf("write after CloseWrite: %v", err)
			}
			got, err := io.ReadAll(cs)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("late response: %d bytes, %v", len(got), err)
			}
		})
		if name != "ours" {
			continue
		}
		t.Run(name+"/server", func(t *testing.T) {
			cs, err := cc.OpenStream(context.Background(), newRequest("POST", "example.com", "/early"))
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			got, err := io.ReadAll(cs)
			if err != nil || string(got) != "early" {
				t.Fatalf("response %q %v", got, err)
			}
			for i := 0; i < 5; i++ {
				if _, err := cs.Write(make([]byte, 10000)); err != nil {
					t.Fatal(err)
				}
			}
			if err := cs.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n := <-early; n != 50000 {
				t.Fatalf("server read %d bytes after ending its side, want 50000", n)
			}
		})
	}
}

// TestClientCancel: cancelling the context or closing the body early
// resets the stream; the server's handler sees its context end.
func TestClientCancel(t *testing.T) {
	handlerDone := make(chan error, 2)
	ts := startServer(t, Config{}, HandlerFunc(func(st *ServerStream) {
		st.WriteHeaders(&l7.Response{Status: 200}, false)
		st.Write([]byte("first"))
		<-st.Context().Done()
		_, err := st.Write([]byte("more"))
		handlerDone <- err
	}))
	cc := dialClient(t, ts.addr(), Config{})
	for _, how := range []string{"context", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp, err := cc.RoundTrip(ctx, newRequest("GET", "example.com", "/"))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			// The response may be reused after Close; its body handle
			// stays safe to call.
			body := resp.Body
			if _, err := io.ReadFull(body, buf); err != nil {
				t.Fatal(err)
			}
			if how == "context" {
				cancel()
			} else {
				body.(io.Closer).Close()
			}
			var se *StreamError
			if err := <-handlerDone; !errors.As(err, &se) || se.Code != ErrCodeCancel || !se.Remote {
				t.Fatalf("server write after reset: %v", err)
			}
			if _, err := body.Read(buf); err == nil {
				t.Fatal("read after cancel succeeded")
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for cc.State().ActiveStreams != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := cc.State(); st.ActiveStreams != 0 {
		t.Fatalf("slots not freed: %+v", st)
	}
}

// TestClientConcurrentLargeBodies: 10 streams echo 1 MiB each at once on
// one connection, more than the connection window, both ways.
func TestClientConcurrentLargeBodies(t *testing.T) {
	for name, addr := range clientPeers(t, nil) {
		t.Run(name, func(t *testing.T) {
			cc := dialClient(t, addr, Config{})
			var wg sync.WaitGroup
			errs := make(chan error, 10)
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := pattern(1<<20 + i)
					req := newRequest("POST", "example.com", "/echo")
					req.Body = bytes.NewReader(body)
					resp, err := cc.RoundTrip(context.Background(), req)
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.(io.Closer).Close()
					got, err := io.ReadAll(resp.Body)
					if err != nil || !bytes.Equal(got, body) {
						errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(got), err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestClientDrain: Drain returns at once; the connection takes no new
// stream, the stream in flight finishes, and then the connection closes
// by itself.
func TestClientDrain(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, Config{}, HandlerFunc(func(st *ServerStream) {
		st.WriteHeaders(&l7.Response{Status: 200}, false)
		st.Write([]byte("first"))
		<-release
		st.Write([]byte(" rest"))
		st.CloseWrite()
	}))
	cc := dialClient(t, ts.addr(), Config{})
	resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cc.Drain()
	if cc.TryReserve() {
		t.Error("a draining connection reserved a stream")
	}
	if _, err := cc.RoundTrip(context.Background(), newRequest("GET", "example.com", "/")); err == nil {
		t.Error("a draining connection opened a stream")
	}
	if st := cc.State(); st.Closed || !st.GoAway {
		t.Fatalf("state after Drain with a stream in flight: %+v", st)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != " rest" {
		t.Fatalf("the stream in flight ended with %q, %v", rest, err)
	}
	resp.Body.(io.Closer).Close()
	deadline := time.Now().Add(5 * time.Second)
	for !cc.State().Closed && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := cc.State(); !st.Closed {
		t.Fatalf("not closed once its last stream ended: %+v", st)
	}
}

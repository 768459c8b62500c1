package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of one loopback TCP connection on 127.0.5.1.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.5.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// setup wires client <-> [down | relay | up] <-> backend and runs the relay
// in the background; the returned channel yields its Result.
func setup(t *testing.T, opts Options) (client, backend *net.TCPConn, result <-chan Result) {
	client, down := tcpPair(t)
	up, backend := tcpPair(t)
	ch := make(chan Result, 1)
	go func() { ch <- Run(NewTCP(down), NewTCP(up), opts, nil) }()
	t.Cleanup(func() { client.Close(); backend.Close() })
	return client, backend, ch
}

func TestRelayBothWaysWithHalfClose(t *testing.T) {
	for _, size := range []int{1, 100 << 10, 4 << 20} {
		client, backend, result := setup(t, Options{IdleTimeout: time.Minute})
		req := make([]byte, size)
		resp := make([]byte, size/2+1)
		rand.Read(req)
		rand.Read(resp)

		var wg sync.WaitGroup
		var gotReq []byte
		wg.Add(1)
		go func() { // backend: read the whole request, then answer and close.
			defer wg.Done()
			gotReq, _ = io.ReadAll(backend)
			backend.Write(resp)
			backend.CloseWrite()
		}()
		if _, err := client.Write(req); err != nil {
			t.Fatal(err)
		}
		client.CloseWrite() // the client's half-close must not cut the response
		gotResp, err := io.ReadAll(client)
		if err != nil {
			t.Fatalf("size %d: reading response: %v", size, err)
		}
		wg.Wait()
		if !bytes.Equal(gotReq, req) {
			t.Errorf("size %d: backend got %d bytes, want %d intact", size, len(gotReq), len(req))
		}
		if !bytes.Equal(gotResp, resp) {
			t.Errorf("size %d: client got %d bytes, want %d intact", size, len(gotResp), len(resp))
		}
		res := <-result
		if res.Err != nil || res.DownstreamToUpstream != int64(size) || res.UpstreamToDownstream != int64(len(resp)) {
			t.Errorf("size %d: result %+v, want no error and counts %d/%d", size, res, size, len(resp))
		}
	}
}

func TestRelayResetPropagates(t *testing.T) {
	client, backend, result := setup(t, Options{})
	client.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(backend, buf); err != nil {
		t.Fatal(err)
	}
	NewTCP(backend).Abort()
	_, err := io.ReadAll(client)
	if err == nil {
		t.Fatal("client saw a clean EOF after the backend reset; want a reset")
	}
	if res := <-result; res.Err == nil {
		t.Fatalf("result has no error after a reset: %+v", res)
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	client, _, result := setup(t, Options{IdleTimeout: 50 * time.Millisecond})
	res := <-result
	if !errors.Is(res.Err, ErrIdleTimeout) {
		t.Fatalf("err = %v, want ErrIdleTimeout", res.Err)
	}
	if _, err := io.ReadAll(client); err == nil {
		t.Fatal("client connection still open after idle timeout")
	}
}

func TestRelayActivityKeepsIdleTimerAway(t *testing.T) {
	client, backend, result := setup(t, Options{IdleTimeout: 200 * time.Millisecond})
	// Keep bytes moving for several idle periods; the relay must stay up.
	for i := 0; i < 10; i++ {
		client.Write([]byte{byte(i)})
		b := make([]byte, 1)
		if _, err := io.ReadFull(backend, b); err != nil {
			t.Fatalf("write %d: relay closed while active: %v", i, err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	client.CloseWrite()
	backend.CloseWrite()
	if res := <-result; res.Err != nil || res.DownstreamToUpstream != 10 {
		t.Fatalf("result %+v, want clean end after 10 bytes", res)
	}
}

// TestRelayMaxDuration checks that MaxDuration ends a relay however busy it is, and that a
// relay that ends first stops its timer.
func TestRelayMaxDuration(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		active  bool // keep bytes moving
		wantErr error
	}{
		{"idle past the duration", Options{MaxDuration: 50 * time.Millisecond}, false, ErrMaxDuration},
		{"busy past the duration", Options{MaxDuration: 150 * time.Millisecond, IdleTimeout: time.Minute}, true, ErrMaxDuration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, backend, result := setup(t, tc.opts)
			stop := make(chan struct{})
			moved := make(chan struct{})
			go func() {
				defer close(moved)
				b := make([]byte, 1)
				for tc.active {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := client.Write([]byte{1}); err != nil {
						return
					}
					if _, err := io.ReadFull(backend, b); err != nil {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			select {
			case res := <-result:
				if !errors.Is(res.Err, tc.wantErr) {
					t.Errorf("err = %v, want %v", res.Err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the relay outlived its max duration")
			}
			close(stop)
			<-moved
		})
	}
	// Ended before its time: a clean end.
	client, backend, result := setup(t, Options{MaxDuration: time.Minute})
	client.CloseWrite()
	backend.CloseWrite()
	if res := <-result; res.Err != nil {
		t.Errorf("a relay ended by both sides: %v", res.Err)
	}
}

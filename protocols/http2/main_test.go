package http2

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testAddr is the loopback range these tests may use.
const testHost = "127.0.21.1"

// testServer runs ServeConn for every connection accepted on a loopback
// listener until the test ends.
type testServer struct {
	ln      net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	results chan error
}

func startServer(t testing.TB, cfg Config, h Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{ln: ln, cancel: cancel, results: make(chan error, 1024)}
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ts.mu.Lock()
			ts.conns = append(ts.conns, c)
			ts.mu.Unlock()
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				err := ServeConn(ctx, c, cfg, h)
				select {
				case ts.results <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) addr() string { return ts.ln.Addr().String() }

func (ts *testServer) close() {
	ts.cancel()
	ts.ln.Close()
	ts.mu.Lock()
	for _, c := range ts.conns {
		c.Close()
	}
	ts.mu.Unlock()
	ts.wg.Wait()
}

func dialClient(t testing.TB, addr string, cfg Config) *ClientConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClientConn(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func newRequest(method, authority, path string) *l7.Request {
	r := &l7.Request{Method: method, Scheme: "http", Authority: []byte(authority), Path: []byte(path), ContentLength: -1}
	return r
}

// echoHandler answers 200 with the request body, its headers x-*, and
// the request trailers as response trailers.
var echoHandler = HandlerFunc(func(st *ServerStream) {
	req := st.Request()
	var resp l7.Response
	resp.Status = 200
	for _, f := range req.Header.Fields() {
		if len(f.Name) > 2 && string(f.Name[:2]) == "x-" {
			resp.Header.Add(string(f.Name), string(f.Value))
		}
	}
	if err := st.WriteHeaders(&resp, false); err != nil {
		return
	}
	if req.Body != nil {
		buf := make([]byte, 32<<10)
		for {
			n, err := req.Body.Read(buf)
			if n > 0 {
				if _, werr := st.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					return
				}
				break
			}
		}
	}
	if req.Trailer.Len() > 0 {
		var tr l7.Header
		tr.CopyFrom(&req.Trailer)
		st.WriteTrailers(&tr)
		return
	}
	st.CloseWrite()
})

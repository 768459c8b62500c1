package http2

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	xhttp2 "golang.org/x/net/http2"
)

// pattern returns n deterministic, position-dependent bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// xnetClient is x/net's Transport speaking h2c with prior knowledge.
func xnetClient(t testing.TB) *http.Client {
	tr := &xhttp2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// startXNetServer serves h with x/net's Server (h2c, prior knowledge) on a
// loopback listener until the test ends.
func startXNetServer(t testing.TB, h http.Handler) string {
	ln, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &xhttp2.Server{MaxConcurrentStreams: 250}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c, &xhttp2.ServeConnOpts{Handler: h})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// netEcho is echoHandler for net/http: x- headers, body (flushed chunk by
// chunk, so full duplex works), request trailers as response trailers;
// "/late" reads the whole body before answering.
func netEcho(w http.ResponseWriter, r *http.Request) {
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-") {
			w.Header()[k] = v
		}
	}
	if r.URL.Path == "/late" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		w.WriteHeader(200)
		for i := 0; i < 4; i++ {
			w.Write(body[i*len(body)/4 : (i+1)*len(body)/4])
			w.(http.Flusher).Flush()
		}
		return
	}
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			w.(http.Flusher).Flush()
		}
		if err != nil {
			break
		}
	}
	for k, v := range r.Trailer {
		w.Header()[http.TrailerPrefix+k] = v
	}
}

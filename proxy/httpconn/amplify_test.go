package httpconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// countingBackend is an HTTP/1.1 upstream on 127.0.24.2 that counts the
// connections it accepts and answers every request after a short wait
// (so that a cancel finds the request in flight upstream). It returns its
// port and the count.
func countingBackend(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.24.2:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond)
			io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, &accepted
}

// h2cClient is an HTTP/2 client in cleartext to addr; one connection at a
// time, a new one after the server closes it.
func h2cClient(addr string) *http.Client {
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// TestCancelledRequestsReuseUpstreamConnections is issue 16's
// amplification onto pods: a downstream that cancels every request (HTTP/2
// RST_STREAM right after HEADERS, or shortly after, as a rapid reset does;
// its connection closed by the rapid-reset defence and opened again) must
// not cost the upstream one new connection per cancelled request, and a
// legitimate client of the same service keeps getting 200s meanwhile.
func TestCancelledRequestsReuseUpstreamConnections(t *testing.T) {
	const (
		workers   = 16
		perWorker = 250
		poolSize  = 16
	)
	port, accepted := countingBackend(t)
	config := strings.Replace(directConfig, "BACKEND_PORT", port, 1)
	config = strings.Replace(config, "- {match: {prefix: /upload}, route: {cluster: c}}", "- {match: {prefix: /upload}, route: {cluster: c}}\n              - {match: {prefix: /svc}, route: {cluster: c}}", 1)
	// The pool's size: the cluster's max_connections.
	config = strings.Replace(config, "  - name: c\n", fmt.Sprintf("  - name: c\n    circuit_breakers: {thresholds: [{max_connections: %d}]}\n", poolSize), 1)
	addr := serveConfig(t, config)

	// The legitimate client, on its own connection, until the attack ends.
	legit := h2cClient(addr)
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	var lwg sync.WaitGroup
	lwg.Add(1)
	go func() {
		defer lwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := legit.Get("http://svc/svc/legit")
			if err != nil {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d body %q", resp.StatusCode, body))
				continue
			}
			ok.Add(1)
		}
	}()

	attacker := h2cClient(addr)
	var cancelled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/svc/attack", nil)
				// Cancel at once (RST_STREAM right behind HEADERS) or after
				// a moment (the request upstream, its response awaited).
				delay := time.Duration((w+i)%4) * 300 * time.Microsecond
				timer := time.AfterFunc(delay, cancel)
				resp, err := attacker.Do(req)
				if err == nil {
					resp.Body.Close()
				} else {
					cancelled.Add(1)
				}
				timer.Stop()
				cancel()
			}
		}()
	}
	wg.Wait()
	close(stop)
	lwg.Wait()
	attacker.CloseIdleConnections()
	legit.CloseIdleConnections()

	conns := accepted.Load()
	t.Logf("%d requests, %d cancelled before their response; upstream connections opened: %d; legitimate client: %d ok, %d failed",
		workers*perWorker, cancelled.Load(), conns, ok.Load(), failed.Load())
	if cancelled.Load() < workers*perWorker/4 {
		t.Fatalf("only %d of %d requests were cancelled: the test does not test", cancelled.Load(), workers*perWorker)
	}
	// The pool's connections, and a few more for connections closed by a
	// cancel whose response did not come within the drain bound (none are
	// expected here: the backend answers within a millisecond).
	if limit := int64(poolSize + 4); conns > limit {
		t.Errorf("the upstream accepted %d connections for %d cancelled requests, want at most %d", conns, cancelled.Load(), limit)
	}
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("legitimate client: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstFailure.Load())
	}
}

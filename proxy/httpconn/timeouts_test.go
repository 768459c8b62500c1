package httpconn

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// headerTimeouts reads envoy_http_downstream_rq_header_timeout for prefix.
func headerTimeouts(t *testing.T, prefix string) float64 {
	t.Helper()
	return hcmCounter(t, "envoy_http_downstream_rq_header_timeout", prefix)
}

// hcmCounter reads the counter name of the connection manager prefix.
func hcmCounter(t *testing.T, name, prefix string) float64 {
	t.Helper()
	fams, err := stats.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "http_conn_manager_prefix" && l.GetValue() == prefix {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRequestHeadersTimeout: with request_headers_timeout, a connection
// whose head trickles in (slowloris) is closed once the timeout passes
// after its first byte, and counted; a keep-alive connection idle between
// requests for longer than the timeout is not.
func TestRequestHeadersTimeout(t *testing.T) {
	config := strings.Replace(directConfig, "stat_prefix: t\n", "stat_prefix: headers_timeout\n          request_headers_timeout: 1s\n", 1)
	addr := serveConfig(t, strings.Replace(config, "BACKEND_PORT", bodyReader(t), 1))

	t.Run("slowloris", func(t *testing.T) {
		before := headerTimeouts(t, "headers_timeout")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(io.Discard, c)
		}()
		// A header line every 200 ms for up to 20 s: the connection must
		// be closed long before the last.
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		sent := 0
	trickle:
		for ; sent < 100; sent++ {
			select {
			case <-closed:
				break trickle
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte("X-Slow: 1\r\n")); err != nil {
				break
			}
		}
		<-closed
		if sent == 100 {
			t.Fatal("the connection was still open after 100 header lines")
		}
		// Counted by the server's goroutine once the close is done: the
		// client may see the close first.
		deadline := time.Now().Add(5 * time.Second)
		for headerTimeouts(t, "headers_timeout") == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := headerTimeouts(t, "headers_timeout"); got != before+1 {
			t.Fatalf("downstream_rq_header_timeout %v, want %v", got, before+1)
		}
	})
	t.Run("idle keep-alive is not a slow head", func(t *testing.T) {
		before := headerTimeouts(t, "headers_timeout")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := range 2 {
			if i > 0 {
				time.Sleep(1500 * time.Millisecond) // idle, longer than the headers timeout
			}
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: status %d", i, resp.StatusCode)
			}
		}
		if got := headerTimeouts(t, "headers_timeout"); got != before {
			t.Fatalf("downstream_rq_header_timeout %v, want %v", got, before)
		}
	})
}

// slowReader yields size bytes at rate bytes per second, in 1 KiB writes.
type slowReader struct {
	left, rate int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left, 1024)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(r.rate))
	for i := range p[:n] {
		p[i] = 'u'
	}
	r.left -= n
	return n, nil
}

// TestSlowUploadWithinTheDefaultRouteTimeout: issue 16's figure, a 150 KB
// upload at 5 KB/s (30 s) through a route with the default timeout (15 s)
// to a real upstream on loopback, gets the upstream's 200: the route
// timeout runs from the end of the request, as Envoy's.
func TestSlowUploadWithinTheDefaultRouteTimeout(t *testing.T) {
	addr := serve(t)
	req, err := http.NewRequest("POST", "http://"+addr+"/upload", &slowReader{left: 150 << 10, rate: 5 << 10})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 150 << 10
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "read it" {
		t.Fatalf("%d %q, want the upstream's 200", resp.StatusCode, body)
	}
}

package httpconn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// Addresses of the stream timeout tests: 127.0.203.0/24 (the waypoint on
// .1, the backend on .2).

// timeoutsConfig is a connection manager with stat_prefix PREFIX and the
// timeouts EXTRA, routing to the backend BACKEND_PORT with no route
// timeout, logging "%REQ(X-CASE)% %RESPONSE_CODE% %RESPONSE_FLAGS%
// %RESPONSE_CODE_DETAILS%" to LOG.
const timeoutsConfig = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.203.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: PREFIX
          EXTRA
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: LOG
              log_format: {text_format_source: {inline_string: "%REQ(X-CASE)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n"}}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /}, route: {cluster: c, timeout: 0s}}
  clusters:
  - name: c
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.203.2, port_value: BACKEND_PORT}}}}]}]}
`

// timeoutBackend is the upstream of the timeout tests:
//
//	/hang     reads the request body and never answers
//	/stall    answers 200, sends a few bytes, then nothing
//	/trickle  answers 200 and sends ?n= bytes, one every 50 ms
//	/ok       reads the request body and answers "ok"
//	/ws       upgrades (101) and echoes every byte
//
// Handlers that wait end with their request or the test.
func timeoutBackend(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.203.2:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := func() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}
		switch r.URL.Path {
		case "/ws":
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			rw.Flush()
			go func() { <-stop; conn.Close() }()
			io.Copy(conn, rw)
		case "/hang":
			io.Copy(io.Discard, r.Body)
			wait()
		case "/stall":
			w.WriteHeader(200)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			wait()
		case "/trickle":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.WriteHeader(200)
			for i := 0; i < n; i++ {
				select {
				case <-r.Context().Done():
					return
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				w.Write([]byte{'.'})
				w.(http.Flusher).Flush()
			}
		default:
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { close(stop); srv.Close(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// accessLog collects the lines of the timeout tests' access log: want
// registers a line every one of which must be in the file once the
// servers are done (checked at the test's end).
type accessLog struct {
	path  string
	sinks *accesslog.Sinks
	want  []string
}

func newAccessLog(t *testing.T) *accessLog {
	l := &accessLog{path: filepath.Join(t.TempDir(), "access.log"), sinks: &accesslog.Sinks{}}
	// Registered first, so it runs last: after the servers' cleanups.
	t.Cleanup(func() {
		l.sinks.Close()
		b, err := os.ReadFile(l.path)
		if err != nil && !os.IsNotExist(err) {
			t.Error(err)
		}
		for _, w := range l.want {
			if !strings.Contains(string(b), w+"\n") {
				t.Errorf("access log has no line %q; it has:\n%s", w, b)
			}
		}
	})
	return l
}

// serveTimeouts serves timeoutsConfig with prefix and extra (YAML lines
// of the connection manager) on 127.0.203.1 until the test ends.
func serveTimeouts(t *testing.T, log *accessLog, backend, prefix, extra string) string {
	t.Helper()
	cfg := strings.NewReplacer("PREFIX", prefix, "EXTRA", extra, "LOG", log.path, "BACKEND_PORT", backend).Replace(timeoutsConfig)
	env := &Env{Log: slog.New(slog.DiscardHandler), Telemetry: &Telemetry{Logs: log.sinks}}
	return serveConfigAt(t, "127.0.203.1:0", cfg, env)
}

// toRequest is a request of the timeout tests: partial is the part
// of a body of 100 bytes sent before the client stops ("" for a GET).
type toRequest struct {
	method, path, partial, tag string
}

// timeoutResult is what a client saw.
type timeoutResult struct {
	status  int
	body    string
	bodyErr bool // the body ended in an error (a reset)
	closed  bool // HTTP/1.1: "connection: close", and the connection closed after the response
}

// doHTTP1 sends req on a new HTTP/1.1 connection to addr.
func doHTTP1(t *testing.T, addr string, req toRequest) timeoutResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nX-Case: %s\r\n", req.method, req.path, req.tag)
	if req.method == "POST" {
		head += "Content-Length: 100\r\n"
	}
	io.WriteString(c, head+"\r\n"+req.partial)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	r := timeoutResult{status: resp.StatusCode, body: string(body), bodyErr: err != nil}
	if !r.bodyErr && resp.Close {
		// "connection: close", then the end of the connection.
		_, err := br.ReadByte()
		r.closed = err == io.EOF
	}
	return r
}

// doH2C sends req over h2c to addr; a partial body stays open until the
// test ends.
func doH2C(t *testing.T, addr string, req toRequest) timeoutResult {
	t.Helper()
	var body io.Reader
	if req.method == "POST" {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go pw.Write([]byte(req.partial))
		body = pr
	}
	hr, err := http.NewRequest(req.method, "http://"+addr+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.ContentLength = 100
	}
	hr.Header.Set("X-Case", req.tag)
	cl := h2cClient(addr)
	cl.Timeout = 20 * time.Second
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(hr)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return timeoutResult{status: resp.StatusCode, body: string(b), bodyErr: err != nil}
}

// TestStreamTimeouts: each of the connection manager's stream timeouts,
// over HTTP/1.1 and h2c, answers as Envoy does (408 before the request is
// whole, 504 after, a reset once the response started; an HTTP/1.1
// connection closed after), counts Envoy's counter and logs Envoy's flag
// and details; activity keeps the idle timeout off, and a whole request
// disarms request_timeout.
func TestStreamTimeouts(t *testing.T) {
	log := newAccessLog(t)
	backend := timeoutBackend(t)
	const (
		idleCounter = "envoy_http_downstream_rq_idle_timeout"
		reqCounter  = "envoy_http_downstream_rq_timeout"
		maxCounter  = "envoy_http_downstream_rq_max_duration_reached"
	)
	type tcase struct {
		name    string
		req     toRequest
		want    timeoutResult
		counter string // incremented once; "" none
		log     string // the access log's status, flags and details
	}
	groups := []struct {
		prefix, extra string
		cases         []tcase
	}{
		{"to_idle", "stream_idle_timeout: 0.2s", []tcase{
			{"request body stalls", toRequest{"POST", "/hang", "abc", ""},
				timeoutResult{status: 408, body: "stream timeout", closed: true}, idleCounter, "408 SI stream_idle_timeout"},
			{"upstream silent", toRequest{"GET", "/hang", "", ""},
				timeoutResult{status: 504, body: "stream timeout", closed: true}, idleCounter, "504 SI stream_idle_timeout"},
			{"response stalls", toRequest{"GET", "/stall", "", ""},
				timeoutResult{status: 200, body: "partial", bodyErr: true}, idleCounter, "200 SI stream_idle_timeout"},
			{"response trickles", toRequest{"GET", "/trickle?n=10", "", ""},
				timeoutResult{status: 200, body: ".........."}, "", "200 - via_upstream"},
		}},
		{"to_request", "stream_idle_timeout: 0s\n          request_timeout: 0.2s", []tcase{
			{"request body stalls", toRequest{"POST", "/hang", "abc", ""},
				timeoutResult{status: 408, body: "request timeout", closed: true}, reqCounter, "408 - request_overall_timeout"},
			{"whole request", toRequest{"GET", "/trickle?n=10", "", ""},
				timeoutResult{status: 200, body: ".........."}, "", "200 - via_upstream"},
		}},
		{"to_maxstream", "stream_idle_timeout: 0s\n          common_http_protocol_options: {max_stream_duration: 0.3s}", []tcase{
			{"upstream silent", toRequest{"GET", "/hang", "", ""},
				timeoutResult{status: 504, body: "downstream duration timeout", closed: true}, maxCounter, "504 - max_duration_timeout"},
			{"response flowing", toRequest{"GET", "/trickle?n=200", "", ""},
				timeoutResult{status: 200, bodyErr: true}, maxCounter, "200 - max_duration_timeout"},
		}},
	}
	for _, g := range groups {
		addr := serveTimeouts(t, log, backend, g.prefix, g.extra)
		for _, c := range g.cases {
			for _, proto := range []string{"http1", "h2c"} {
				t.Run(g.prefix+"/"+c.name+"/"+proto, func(t *testing.T) {
					req := c.req
					req.tag = strings.ReplaceAll(g.prefix+"/"+c.name+"/"+proto, " ", "_")
					before := map[string]float64{}
					for _, n := range []string{idleCounter, reqCounter, maxCounter} {
						before[n] = hcmCounter(t, n, g.prefix)
					}
					var got timeoutResult
					want := c.want
					if proto == "http1" {
						got = doHTTP1(t, addr, req)
					} else {
						got = doH2C(t, addr, req)
						want.closed = false
					}
					if want.bodyErr && strings.HasPrefix(got.body, want.body) {
						// A reset: what came before it may be more than want's.
						got.body = want.body
					}
					if got != want {
						t.Fatalf("got %+v, want %+v", got, want)
					}
					// Counted by the timer when it went off, before the client
					// could see anything.
					for n, b := range before {
						wantN := b
						if n == c.counter {
							wantN++
						}
						if gotN := hcmCounter(t, n, g.prefix); gotN != wantN {
							t.Errorf("%s %v, want %v", n, gotN, wantN)
						}
					}
					log.want = append(log.want, req.tag+" "+c.log)
				})
			}
		}
	}
}

// TestStreamTimeoutsKeepAlive: with every stream timeout set and none
// passing, HTTP/1.1 requests follow one another on a connection and
// nothing is counted.
func TestStreamTimeoutsKeepAlive(t *testing.T) {
	log := newAccessLog(t)
	addr := serveTimeouts(t, log, timeoutBackend(t), "to_none",
		"stream_idle_timeout: 10s\n          request_timeout: 10s\n          request_headers_timeout: 10s\n          common_http_protocol_options: {max_stream_duration: 20s}")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "POST /ok HTTP/1.1\r\nHost: x\r\nX-Case: keepalive%d\r\nContent-Length: 3\r\n\r\nabc", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
		log.want = append(log.want, fmt.Sprintf("keepalive%d 200 - via_upstream", i))
	}
	for _, n := range []string{"envoy_http_downstream_rq_idle_timeout", "envoy_http_downstream_rq_timeout",
		"envoy_http_downstream_rq_max_duration_reached", "envoy_http_downstream_rq_header_timeout"} {
		if v := hcmCounter(t, n, "to_none"); v != 0 {
			t.Errorf("%s %v, want 0", n, v)
		}
	}
}

// h2cRaw opens an HTTP/2 connection with prior knowledge to addr and
// exchanges SETTINGS.
func h2cRaw(t *testing.T, addr string) (*xhttp2.Framer, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, xhttp2.ClientPreface)
	fr := xhttp2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr, c
}

// requestBlock encodes a GET of path.
func requestBlock(path string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}, {"x-case", "h2-headers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// statusOf returns a matcher of response HEADERS on stream id with
// :status want; it decodes every header block with dec, the connection's
// decoder, so that blocks are read in order.
func statusOf(dec *hpack.Decoder, id uint32, want string) func(xhttp2.Frame) bool {
	return func(f xhttp2.Frame) bool {
		h, ok := f.(*xhttp2.HeadersFrame)
		if !ok {
			return false
		}
		fields, err := dec.DecodeFull(h.HeaderBlockFragment())
		return err == nil && h.StreamID == id && len(fields) > 0 && fields[0].Name == ":status" && fields[0].Value == want
	}
}

// readFrame reads frames until match; nil when the connection ends first.
func readFrame(fr *xhttp2.Framer, match func(xhttp2.Frame) bool) xhttp2.Frame {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil
		}
		if match(f) {
			return f
		}
	}
}

// TestRequestHeadersTimeoutH2C: on an h2c connection, a request whose
// header block stops half way is answered 408 and reset once
// request_headers_timeout passes, counted as Envoy's
// downstream_rq_header_timeout; the connection serves the next stream.
func TestRequestHeadersTimeoutH2C(t *testing.T) {
	log := newAccessLog(t)
	addr := serveTimeouts(t, log, timeoutBackend(t), "to_headers_h2", "request_headers_timeout: 0.2s")
	before := headerTimeouts(t, "to_headers_h2")
	fr, _ := h2cRaw(t, addr)
	block := requestBlock("/ok")
	if err := fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:len(block)/2], EndStream: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	if readFrame(fr, statusOf(dec, 1, "408")) == nil {
		t.Fatal("no 408 for the stream whose headers stopped")
	}
	if got := headerTimeouts(t, "to_headers_h2"); got != before+1 {
		t.Fatalf("downstream_rq_header_timeout %v, want %v", got, before+1)
	}
	fr.WriteContinuation(1, true, block[len(block)/2:])
	if err := fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, BlockFragment: requestBlock("/ok"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if readFrame(fr, statusOf(dec, 3, "200")) == nil {
		t.Fatal("the next stream was not served")
	}
}

// TestMaxConnectionDuration: once max_connection_duration passes, an
// HTTP/1.1 connection's response in flight carries "connection: close"
// and an idle one is closed after drain_timeout; an h2c connection gets
// the GOAWAY notice (last stream 2^31-1), serves a stream opened after it,
// then the final GOAWAY and its end. Each counts Envoy's
// downstream_cx_max_duration_reached.
func TestMaxConnectionDuration(t *testing.T) {
	log := newAccessLog(t)
	const counter = "envoy_http_downstream_cx_max_duration_reached"
	addr := serveTimeouts(t, log, timeoutBackend(t), "to_maxconn",
		"drain_timeout: 1s\n          common_http_protocol_options: {max_connection_duration: 0.3s}")

	t.Run("http1 idle", func(t *testing.T) {
		before := hcmCounter(t, counter, "to_maxconn")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\nX-Case: maxconn-h1\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		// The connection, kept alive, is closed by the server.
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read after the response: %v, want the server's close", err)
		}
		if got := hcmCounter(t, counter, "to_maxconn"); got != before+1 {
			t.Fatalf("%s %v, want %v", counter, got, before+1)
		}
	})

	t.Run("http1 in flight", func(t *testing.T) {
		before := hcmCounter(t, counter, "to_maxconn")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// A response whose body lasts past the connection's max duration
		// (its headers went before): the connection ends after it.
		io.WriteString(c, "GET /trickle?n=20 HTTP/1.1\r\nHost: x\r\nX-Case: maxconn-h1-busy\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if body, err := io.ReadAll(resp.Body); err != nil || len(body) != 20 {
			t.Fatalf("body %q %v, want 20 bytes", body, err)
		}
		if got := hcmCounter(t, counter, "to_maxconn"); got != before+1 {
			t.Fatalf("%s %v, want %v", counter, got, before+1)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read after the response: %v, want the server's close", err)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		before := hcmCounter(t, counter, "to_maxconn")
		fr, _ := h2cRaw(t, addr)
		goAway := func(f xhttp2.Frame) bool { _, ok := f.(*xhttp2.GoAwayFrame); return ok }
		g, _ := readFrame(fr, goAway).(*xhttp2.GoAwayFrame)
		if g == nil || g.LastStreamID != 1<<31-1 || g.ErrCode != xhttp2.ErrCodeNo {
			t.Fatalf("first GOAWAY %v, want the notice (2^31-1, NO_ERROR)", g)
		}
		if got := hcmCounter(t, counter, "to_maxconn"); got != before+1 {
			t.Fatalf("%s %v, want %v", counter, got, before+1)
		}
		if err := fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("/ok"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		dec := hpack.NewDecoder(4096, nil)
		if readFrame(fr, statusOf(dec, 1, "200")) == nil {
			t.Fatal("a stream opened after the notice was not served")
		}
		final, _ := readFrame(fr, goAway).(*xhttp2.GoAwayFrame)
		if final == nil || final.LastStreamID != 1 {
			t.Fatalf("final GOAWAY %v, want last stream 1", final)
		}
		if _, err := fr.ReadFrame(); err == nil {
			t.Fatal("connection open after the final GOAWAY")
		}
	})
}

// TestUpgradeIdleTimeout: an HTTP/1.1 upgrade's relay ends when no byte
// has moved for stream_idle_timeout, counted as Envoy's
// downstream_rq_idle_timeout.
func TestUpgradeIdleTimeout(t *testing.T) {
	log := newAccessLog(t)
	addr := serveTimeouts(t, log, timeoutBackend(t), "to_upgrade",
		"stream_idle_timeout: 0.2s\n          upgrade_configs: [{upgrade_type: websocket}]")
	before := hcmCounter(t, "envoy_http_downstream_rq_idle_timeout", "to_upgrade")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Case: upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q %v", got, err)
	}
	// Then nothing either way: the relay ends.
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a byte after the echo")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the idle upgraded stream was not ended")
	}
	// Counted once the relay has returned, after the client saw its end.
	waitCounter(t, "envoy_http_downstream_rq_idle_timeout", "to_upgrade", before+1)
	log.want = append(log.want, "upgrade 101 - via_upstream")
}

// waitCounter waits for the counter name of prefix to read want (no
// timing assertion: it only bounds a hang), and fails if it does not.
func waitCounter(t *testing.T, name, prefix string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for hcmCounter(t, name, prefix) != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := hcmCounter(t, name, prefix); got != want {
		t.Fatalf("%s %v, want %v", name, got, want)
	}
}

// TestTimeoutReplyReplacesTheChainsError: when a stream timer ends a
// request, the chain may already have answered the error it saw (its
// context cancelled: DC; its body read failing at the deadline the timer
// set: a timeout, UT); the timer's reply replaces that answer, and its
// flag with it.
func TestTimeoutReplyReplacesTheChainsError(t *testing.T) {
	tests := []struct {
		name   string
		chain  status.Kind // the error the chain answered; 0: none
		flags  filters.Flags
		reason timeoutReason
		want   string // flags after
	}{
		{"nothing answered yet", 0, 0, timeoutRequest, ""},
		{"downstream gone", status.DownstreamGone, filters.FlagDC, timeoutRequest, ""},
		{"body read timed out", status.Timeout, filters.FlagUT, timeoutRequest, ""},
		{"body read timed out, idle timer", status.Timeout, filters.FlagUT, timeoutIdle, "SI"},
		{"an earlier retry stays", status.Timeout, filters.FlagUT | filters.FlagURX, timeoutRequest, "URX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &filters.Stream{}
			s.ResponseFlags = tc.flags &^ filters.FlagOf(tc.chain)
			if tc.chain != 0 {
				// As Chain.Run answers an error.
				s.SendLocalReply(tc.chain.HTTPStatus(), "chain", filters.FlagOf(tc.chain))
				s.Local.Kind = tc.chain
			}
			if s.ResponseFlags != tc.flags {
				t.Fatalf("flags %q before the timeout, want %q", s.ResponseFlags, tc.flags)
			}
			timeoutReply(s, tc.reason, false)
			if s.Local == nil || s.Local.Status != 408 {
				t.Fatalf("local reply %+v, want 408", s.Local)
			}
			if got := s.ResponseFlags.String(); got != tc.want {
				t.Errorf("flags %q, want %q", got, tc.want)
			}
		})
	}
}

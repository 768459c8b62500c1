package httpconn

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/telemetry/stats"
	"github.com/gowaypoint/waypoint/xds"
)

// overloadedBy returns an overload manager whose action is saturated: a
// fixed_heap monitor at 90% of its limit, the action's threshold at 50%.
func overloadedBy(t *testing.T, action string) *overload.Manager {
	cfg := &xds.Overload{RefreshInterval: time.Second, HeapMonitor: true, MaxHeapBytes: 1000,
		Actions: []xds.OverloadAction{{Name: action,
			Triggers: []xds.OverloadTrigger{{Monitor: xds.MonitorFixedHeap, Threshold: 0.5}}}}}
	m, err := overload.New(cfg, overload.Options{
		Sample:       func() overload.Memory { return overload.Memory{InUse: 900} },
		FreeOSMemory: func() {},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Refresh()
	return m
}

// prefixCounter is the counter name{http_conn_manager_prefix=prefix}.
func prefixCounter(t *testing.T, name, prefix string) float64 {
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

// TestOverloadActions: the overload manager's stop_accepting_requests and
// disable_http_keepalive reach the requests of an HTTP connection
// manager, in HTTP/1.1 and HTTP/2 (h2c), with Envoy's local reply and
// counters under the manager's stat_prefix ("t" in directConfig).
func TestOverloadActions(t *testing.T) {
	const (
		refusedName   = "envoy_http_downstream_rq_overload_close"
		keepAliveName = "envoy_http_downstream_cx_overload_disable_keepalive"
	)
	tests := []struct {
		action string
		h2     bool
		// status of the request; closing: the connection is drained after
		// it (HTTP/1.1 "connection: close", HTTP/2 GOAWAY).
		status           int
		retryAfter       string
		closing          bool
		counter          string
		counterIncrement float64
	}{
		{action: "", status: 200},
		{action: "", h2: true, status: 200},
		{action: xds.ActionStopAcceptingRequests, status: 503, retryAfter: overload.RetryAfter, counter: refusedName, counterIncrement: 1},
		{action: xds.ActionStopAcceptingRequests, h2: true, status: 503, retryAfter: overload.RetryAfter, counter: refusedName, counterIncrement: 1},
		{action: xds.ActionDisableHTTPKeepAlive, status: 200, closing: true, counter: keepAliveName, counterIncrement: 1},
		{action: xds.ActionDisableHTTPKeepAlive, h2: true, status: 200, closing: true, counter: keepAliveName, counterIncrement: 1},
	}
	backend := bodyReader(t)
	for _, tc := range tests {
		name := tc.action
		if name == "" {
			name = "none"
		}
		if tc.h2 {
			name += "/h2c"
		}
		t.Run(name, func(t *testing.T) {
			env := &Env{Log: slog.New(slog.DiscardHandler)}
			if tc.action != "" {
				env.Overload = overloadedBy(t, tc.action)
			}
			addr := serveConfigEnv(t, strings.Replace(directConfig, "BACKEND_PORT", backend, 1), env)
			var before float64
			if tc.counter != "" {
				before = prefixCounter(t, tc.counter, "t")
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req, _ := http.NewRequest("GET", "http://a/", nil)
			var (
				resp    *http.Response
				closing func() bool
			)
			if tc.h2 {
				cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(c)
				if err != nil {
					t.Fatal(err)
				}
				resp, err = cc.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				closing = func() bool {
					if !tc.closing {
						// A round trip after the response: a GOAWAY sent
						// with it would be in by then.
						cc.Ping(context.Background())
						return cc.State().Closing
					}
					// GOAWAY comes after the response: wait for it.
					deadline := time.Now().Add(5 * time.Second)
					for !cc.State().Closing && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond)
					}
					return cc.State().Closing
				}
			} else {
				req.Write(c)
				resp, err = http.ReadResponse(bufio.NewReader(c), req)
				if err != nil {
					t.Fatal(err)
				}
				closing = func() bool { return resp.Close }
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("retry-after") != tc.retryAfter {
				t.Errorf("status %d retry-after %q (%q), want %d and %q", resp.StatusCode, resp.Header.Get("retry-after"), body,
					tc.status, tc.retryAfter)
			}
			if tc.status == 503 && string(body) != overload.LocalReplyBody {
				t.Errorf("body %q, want Envoy's %q", body, overload.LocalReplyBody)
			}
			if got := closing(); got != tc.closing {
				t.Errorf("connection closing after the response: %v, want %v", got, tc.closing)
			}
			if tc.counter != "" {
				if got := prefixCounter(t, tc.counter, "t") - before; got != tc.counterIncrement {
					t.Errorf("%s{http_conn_manager_prefix=t} went up by %v, want %v", tc.counter, got, tc.counterIncrement)
				}
			}
		})
	}
}

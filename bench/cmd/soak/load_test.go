package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve starts an HTTP/1.1 and h2c server standing in for the source
// ztunnel and the mesh behind it.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.79.253.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

func TestLoadgen(t *testing.T) {
	for _, c := range []struct {
		name    string
		h       http.HandlerFunc
		failAll bool   // every request fails
		reason  string // a failure reason contains it; "" when none fails
	}{
		{name: "ok", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(configHeader, "a")
			w.Write([]byte("ok"))
		}},
		{name: "503 on the h2 cluster", reason: "to h2: status 503", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(configHeader, "b")
			if r.URL.Path == "/h2" {
				http.Error(w, "no healthy upstream", 503)
				return
			}
			w.Write([]byte("ok"))
		}},
		{name: "no config header", failAll: true, reason: `200 with x-soak-config ""`, h: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ok"))
		}},
		{name: "wrong body", failAll: true, reason: `200 with body "no"`, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(configHeader, "a")
			w.Write([]byte("no"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newLoadgen(serve(t, c.h), 400, 8)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			g.run(ctx)
			sent, ok, failed := g.sent.Load(), g.ok.Load(), g.failed.Load()
			if sent == 0 || sent != ok+failed || g.scheduled.Load() != sent+g.missed.Load() {
				t.Fatalf("scheduled %d, sent %d = ok %d + failed %d, missed %d", g.scheduled.Load(), sent, ok, failed, g.missed.Load())
			}
			reasons, first := g.failures()
			switch {
			case c.reason == "" && failed > 0:
				t.Errorf("%d failed: %v", failed, reasons)
			case c.reason != "" && (len(reasons) == 0 || !strings.Contains(reasons[0].reason, c.reason) || len(first) == 0):
				t.Errorf("failures %v, want one with %q", reasons, c.reason)
			case c.failAll && ok > 0:
				t.Errorf("%d ok, want every request failed", ok)
			}
			iv := g.take()
			if iv.requests != sent || iv.failures != failed || (sent > 0 && (iv.p50 <= 0 || iv.p50 > iv.p99 || iv.p99 > iv.max)) {
				t.Errorf("interval %+v for %d sent, %d failed", iv, sent, failed)
			}
			if next := g.take(); next.requests != 0 {
				t.Errorf("the next interval starts with %d requests", next.requests)
			}
		})
	}
}

func TestPropagation(t *testing.T) {
	version := atomic.Value{}
	version.Store("a")
	g := newLoadgen(serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(configHeader, version.Load().(string))
		w.Write([]byte("ok"))
	}), 400, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.run(ctx) }()
	start := time.Now()
	g.pushed(1, start) // b, served once the handler says so
	waitFor(t, "an answer by the old version", func() bool { return g.byConfig[0].Load() > 0 })
	version.Store("b")
	waitFor(t, "an answer by the new version", func() bool { return g.byConfig[1].Load() > 0 })
	g.pushed(0, time.Now()) // a again, never served
	cancel()
	<-done
	delays, unseen := g.propagation(time.Now().Add(time.Hour), time.Second)
	if len(delays) != 1 || delays[0] <= 0 || unseen != 1 {
		t.Errorf("delays %v, unseen %d; want one delay, and the push of a unseen", delays, unseen)
	}
	if _, unseen := g.propagation(time.Now(), time.Minute); unseen != 0 {
		t.Errorf("a push younger than settle counts as unseen (%d)", unseen)
	}
}

func TestQuantiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := quantile(d, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing: want 0")
	}
	// The run's histogram: within 2% of the exact figures.
	g := newLoadgen("", 1, 1)
	for _, x := range d {
		g.hist[bucketOf(x)]++
		g.maxLat = max(g.maxLat, x)
	}
	p50, p99, mx, ok := g.overall()
	for _, c := range []struct{ got, want time.Duration }{{p50, 50 * time.Millisecond}, {p99, 99 * time.Millisecond}, {mx, 100 * time.Millisecond}} {
		if !ok || c.got < c.want || float64(c.got) > 1.021*float64(c.want) {
			t.Errorf("overall: %v, want %v to 2%% above", c.got, c.want)
		}
	}
	for _, x := range []time.Duration{0, time.Microsecond, time.Hour} {
		if b := bucketOf(x); b < 0 || b >= histBuckets {
			t.Errorf("bucketOf(%v) = %d, out of range", x, b)
		}
	}
}

// waitFor polls cond until it holds; a generous bound only keeps a broken
// run from hanging until the test binary's timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
	}
}

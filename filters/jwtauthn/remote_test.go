package jwtauthn

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// jwksServer serves a JWKS on loopback, counting the fetches.
type jwksServer struct {
	srv     *http.Server
	addr    string
	fetches atomic.Int32
	body    atomic.Value // string
}

func serveJWKS(t *testing.T, body string) *jwksServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	j := &jwksServer{addr: ln.Addr().String()}
	j.body.Store(body)
	j.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" || r.Host != "keys.example.com" {
			http.NotFound(w, r)
			return
		}
		j.fetches.Add(1)
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(j.body.Load().(string)))
	})}
	go j.srv.Serve(ln)
	t.Cleanup(func() { j.srv.Close() })
	return j
}

// httpUpstream is a filters.Upstream whose one cluster, "jwks", is the
// server at addr, reached with net/http.
type httpUpstream struct {
	addr  string
	calls atomic.Int32
	tr    *http.Transport
}

func newUpstream(t *testing.T, addr string) *httpUpstream {
	u := &httpUpstream{addr: addr, tr: &http.Transport{}}
	t.Cleanup(u.tr.CloseIdleConnections)
	return u
}

func (u *httpUpstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	u.calls.Add(1)
	if req.Cluster != "jwks" {
		return nil, context.DeadlineExceeded
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Request.Method, "http://"+u.addr+string(req.Request.Path), nil)
	if err != nil {
		return nil, err
	}
	hreq.Host = string(req.Request.Authority)
	resp, err := u.tr.RoundTrip(hreq)
	if err != nil {
		return nil, err
	}
	return &l7.Response{Status: resp.StatusCode, Body: resp.Body, ContentLength: resp.ContentLength}, nil
}

func remoteConfig(extra string) string {
	return `{"providers":{"p":{"issuer":"iss","remoteJwks":{"httpUri":{"uri":"http://keys.example.com/jwks.json","cluster":"jwks","timeout":"2s"}` +
		extra + `},"payloadInMetadata":"payload"}},"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`
}

// A remote JWKS is fetched through the stream's Upstream at the first
// token, then served from the cache for cache_duration, and fetched again
// past it. cache_duration is an hour, and its end is brought forward by
// the test (no sleep: a loaded machine could outlast a short duration
// between the first requests).
func TestRemoteJWKS(t *testing.T) {
	keys(t)
	srv := serveJWKS(t, jwksOf(t, rsaKey))
	up := newUpstream(t, srv.addr)
	f := newFilter(t, remoteConfig(`,"cacheDuration":"3600s"`))
	if srv.fetches.Load() != 0 {
		t.Fatal("fetched before a token came")
	}
	run := func(tok string) string {
		s := request(t, "/", bearer(tok)...)
		s.Upstream = up
		return outcome(f, s)
	}
	tok := rsaKey.sign(t, claims("iss"))
	for range 3 {
		if o := run(tok); o != "" {
			t.Fatalf("refused: %s", o)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 3 requests within cache_duration, want 1", n)
	}
	if o := run(ecKey.sign(t, claims("iss"))); o != "401 Jwks doesn't have key to match kid or alg from Jwt" {
		t.Errorf("a key not in the set: %q", o)
	}
	srv.body.Store(jwksOf(t, rsaKey, ecKey))
	if len(f.remotes) != 1 {
		t.Fatalf("%d remote key sets, want 1", len(f.remotes))
	}
	r := f.remotes[0]
	r.mu.Lock()
	if left := time.Until(r.expires); left < 59*time.Minute || left > time.Hour {
		t.Errorf("the keys expire in %v, want the cache_duration of 1h", left)
	}
	r.expires = time.Now().Add(-time.Millisecond) // cache_duration has passed
	r.mu.Unlock()
	if o := run(ecKey.sign(t, claims("iss"))); o != "" {
		t.Errorf("after cache_duration, the new key: %q", o)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// A fetch that fails answers 401 "Jwks remote fetch is failed", and the
// next request tries again.
func TestRemoteJWKSFailure(t *testing.T) {
	keys(t)
	srv := serveJWKS(t, "not json")
	up := newUpstream(t, srv.addr)
	f := newFilter(t, remoteConfig(""))
	tok := rsaKey.sign(t, claims("iss"))
	s := request(t, "/", bearer(tok)...)
	s.Upstream = up
	if o := outcome(f, s); o != "401 Jwks remote fetch is failed" {
		t.Errorf("got %q", o)
	}
	srv.body.Store(jwksOf(t, rsaKey))
	s = request(t, "/", bearer(tok)...)
	s.Upstream = up
	if o := outcome(f, s); o != "" {
		t.Errorf("after the server recovered: %q", o)
	}
}

// async_fetch: the keys are fetched in the background through the
// BuildContext's Upstream as the filter is built, retried after
// failed_refetch_duration, and Close stops it.
func TestRemoteJWKSAsync(t *testing.T) {
	keys(t)
	srv := serveJWKS(t, "{}")
	up := newUpstream(t, srv.addr)
	f := newFilter(t, remoteConfig(`,"asyncFetch":{"fastListener":true,"failedRefetchDuration":"0.05s"}`),
		filters.BuildContext{Name: Name, Upstream: up})
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.fetches.Load() < 2 {
		t.Fatalf("%d background fetches, want a retry after the failed one", srv.fetches.Load())
	}
	srv.body.Store(jwksOf(t, edKey))
	tok := edKey.sign(t, claims("iss"))
	for {
		s := request(t, "/", bearer(tok)...) // no stream Upstream: only the background fetch can bring the keys
		o := outcome(f, s)
		if o == "" {
			break
		}
		if !strings.Contains(o, "Jwks remote fetch is failed") || time.Now().After(deadline) {
			t.Fatalf("got %q", o)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Close()
	n := srv.fetches.Load()
	time.Sleep(150 * time.Millisecond)
	if srv.fetches.Load() != n {
		t.Error("fetches after Close")
	}
	// Streams still on the closed filter keep its keys.
	if o := outcome(f, request(t, "/", bearer(tok)...)); o != "" {
		t.Errorf("after Close: %q", o)
	}
}

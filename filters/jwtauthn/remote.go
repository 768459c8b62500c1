package jwtauthn

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// maxJWKSSize bounds a fetched JWKS document.
const maxJWKSSize = 1 << 20

// remoteJWKS is a provider's remote_jwks: the keys fetched from a cluster,
// kept for cache_duration. Without async_fetch a request that finds them
// missing or expired fetches them, through its stream's Upstream, one
// fetch at a time (the others wait for it). With async_fetch a goroutine
// fetches them as the filter is built and again every cache_duration (or
// failed_refetch_duration after a failure), through the BuildContext's
// Upstream; keys so kept do not expire, and a request that comes before
// the first fetch succeeded fetches them itself.
type remoteJWKS struct {
	// Read-only after newRemote.
	uri           *url.URL
	cluster       string
	timeout       time.Duration
	cacheDuration time.Duration
	async         bool
	refetch       time.Duration // async: after a failed fetch
	logger        *slog.Logger

	// Guarded by mu.
	mu       sync.Mutex
	keys     *jwks
	expires  time.Time     // zero with async: never
	inflight chan struct{} // closed when the fetch in flight ends; nil when none

	// The async goroutine, owned by the filter: stopped and waited for by close.
	cancel context.CancelFunc
	done   chan struct{}
}

// get returns the keys, fetching them through up when they are missing or
// expired.
func (r *remoteJWKS) get(ctx context.Context, up filters.Upstream) (*jwks, status) {
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		if r.keys != nil && (r.expires.IsZero() || time.Now().Before(r.expires)) {
			k := r.keys
			r.mu.Unlock()
			return k, statusOK
		}
		if ch := r.inflight; ch != nil {
			r.mu.Unlock()
			if attempt > 0 {
				return nil, statusJwksFetchFail
			}
			select {
			case <-ch:
				continue // look again: the fetch may have failed
			case <-ctx.Done():
				return nil, statusJwksFetchFail
			}
		}
		ch := make(chan struct{})
		r.inflight = ch
		r.mu.Unlock()
		k, err := r.fetch(ctx, up)
		r.store(k, err, ch)
		close(ch)
		if err != nil {
			return nil, statusJwksFetchFail
		}
		return k, statusOK
	}
}

// store keeps what a fetch brought (nothing on a failure: the stale keys
// stay, and the next request fetches again) and ends the fetch in flight
// ch (nil for a background fetch).
func (r *remoteJWKS) store(k *jwks, err error, ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch != nil && r.inflight == ch {
		r.inflight = nil
	}
	if err != nil {
		r.logger.Warn("jwks fetch failed", "uri", r.uri.String(), "cluster", r.cluster, "err", err)
		return
	}
	r.keys = k
	if !r.async {
		r.expires = time.Now().Add(r.cacheDuration)
	}
}

// fetch GETs the JWKS from the cluster.
func (r *remoteJWKS) fetch(ctx context.Context, up filters.Upstream) (*jwks, error) {
	if up == nil {
		return nil, fmt.Errorf("no cluster manager")
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req := &l7.Request{
		Method:    l7.MethodGet,
		Scheme:    r.uri.Scheme,
		Authority: []byte(r.uri.Host),
		Path:      []byte(r.uri.RequestURI()),
		Proto:     l7.HTTP11,
	}
	req.Header.Set("accept", "application/json")
	var k *jwks
	err := filters.CallWhole(ctx, up, &filters.UpstreamRequest{Cluster: r.cluster, Request: req, Deadline: time.Now().Add(r.timeout)}, maxJWKSSize,
		func(resp *l7.Response, body []byte) error {
			if resp.Status != 200 {
				return fmt.Errorf("status %d", resp.Status)
			}
			if k = parseJWKS(body); k == nil {
				return fmt.Errorf("no valid key in the JWKS")
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// start runs the async fetches through up until close.
func (r *remoteJWKS) start(up filters.Upstream) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		for {
			k, err := r.fetch(ctx, up)
			if ctx.Err() != nil {
				return
			}
			r.store(k, err, nil)
			wait := r.cacheDuration
			if err != nil {
				wait = r.refetch
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

// close stops the async fetches; the keys stay for streams still running.
func (r *remoteJWKS) close() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

var discardLogger = slog.New(slog.DiscardHandler)

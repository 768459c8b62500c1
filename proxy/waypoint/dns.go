package waypoint

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/proxy/upstream/dns"
	"github.com/gowaypoint/waypoint/xds"
)

// loggedResolver is the DNS clusters' resolver (lb.Resolver): the name
// server of --dns-resolver, logging when a name starts and stops failing
// to resolve (once each, not at every refresh).
type loggedResolver struct {
	c   *dns.Client
	log *slog.Logger

	mu      sync.Mutex
	failing map[string]bool
}

func newLoggedResolver(server string, log *slog.Logger) *loggedResolver {
	return &loggedResolver{c: &dns.Client{Server: server}, log: log, failing: map[string]bool{}}
}

// Lookup implements lb.Resolver.
func (r *loggedResolver) Lookup(ctx context.Context, name string, family xds.DNSLookupFamily) ([]netip.Addr, time.Duration, error) {
	addrs, ttl, err := r.c.Lookup(ctx, name, family)
	if ctx.Err() != nil {
		return addrs, ttl, err
	}
	r.mu.Lock()
	was := r.failing[name]
	if err != nil {
		r.failing[name] = true
	} else {
		delete(r.failing, name)
	}
	r.mu.Unlock()
	switch {
	case err != nil && !was:
		r.log.Warn("dns: a DNS cluster's name does not resolve; its hosts of the last answer stay", "name", name, "error", err)
	case err == nil && was:
		r.log.Info("dns: a DNS cluster's name resolves again", "name", name, "addresses", len(addrs))
	}
	return addrs, ttl, err
}

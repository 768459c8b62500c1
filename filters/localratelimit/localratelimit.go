// Package localratelimit is Envoy's local rate limit filter,
// envoy.filters.http.local_ratelimit: a token bucket per filter config (the
// listener's, shared by every route without one of its own) or per route
// (typed_per_filter_config), or with local_rate_limit_per_downstream_connection
// one per config and downstream connection, checked for the share of requests
// filter_enabled selects; for the share filter_enforced selects a request
// without a token is answered 429 (or the configured status) with
// x-envoy-ratelimited, the RL response flag and response_headers_to_add;
// otherwise it goes on with request_headers_to_add_when_not_enforced.
// Descriptors (descriptors.go) give the requests the filter's own
// rate_limits describe a bucket of their own, taken before the default one.
// Istio has no API for it: users insert it with an EnvoyFilter.
//
// Counters, as Envoy's <stat_prefix>.http_local_rate_limit.*:
// envoy_http_local_rate_limit_{enabled,enforced,rate_limited,ok}, labelled
// envoy_local_http_ratelimit_prefix=<stat_prefix>.
package localratelimit

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Name and TypeURL identify the filter in an HttpConnectionManager.
const (
	Name    = "envoy.filters.http.local_ratelimit"
	TypeURL = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)

// The local reply's body and details, as Envoy's.
const (
	localBody = "local_rate_limited"
	details   = "local_rate_limited"
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

// New builds the filter from its LocalRateLimit. A config without a
// token_bucket limits nothing by itself: only routes with a config of their
// own are limited.
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Filter, error) {
	c, err := decode(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Filter{name: ctx.Name, cfg: c}, nil
}

// ParsePerRoute decodes a route's LocalRateLimit, which replaces the
// filter's config (and bucket) for that route.
func (factory) ParsePerRoute(ctx filters.BuildContext, cfg proto.Message) (any, error) {
	return decode(ctx, cfg)
}

// Filter is the local rate limit filter. Built once per chain and shared
// by its streams; its buckets are safe for concurrent use.
type Filter struct {
	name string // in the config: per-route configs are looked up by it
	cfg  *config
}

// configFor returns the config in force for s: the route's, else the
// filter's.
func (f *Filter) configFor(s *filters.Stream) *config {
	if r := s.Route(); r != nil {
		if rc, ok := r.FilterConfig(f.name).(*config); ok {
			return rc
		}
		if f.name != Name {
			if rc, ok := r.FilterConfig(Name).(*config); ok {
				return rc
			}
		}
	}
	return f.cfg
}

// OnRequest takes a token, or answers the request when none is left and
// the limit is enforced for it.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	c := f.configFor(s)
	if c.bucket == nil || !c.enabled.Sample() {
		return filters.Continue
	}
	c.stats.enabled.Inc()
	now := time.Now()
	b, ok := c.take(s, now)
	if ok {
		c.stats.ok.Inc()
		return filters.Continue
	}
	c.stats.rateLimited.Inc()
	if !c.enforced.Sample() {
		c.requestHeaders.apply(&s.Request.Header)
		return filters.Continue
	}
	c.stats.enforced.Inc()
	s.SendLocalReply(c.status, localBody, filters.FlagRL)
	s.ResponseCodeDetails = details
	if c.grpcStatus != nil {
		s.Local.GRPCStatus = c.grpcStatus
	}
	h := &s.Local.Header
	h.Set("x-envoy-ratelimited", "true")
	c.responseHeaders.apply(h)
	if c.xHeaders || c.retryAfter {
		c.rateHeaders(h, b, now, true)
	}
	return filters.Stop
}

// OnResponse adds the x-ratelimit-* headers to an upstream response when
// the config asks for them.
func (f *Filter) OnResponse(s *filters.Stream) filters.Status {
	if s.Response == nil {
		return filters.Continue
	}
	if c := f.configFor(s); c.bucket != nil && c.xHeaders {
		now := time.Now()
		b := c.bucketFor(s, now)
		if len(c.descriptors) > 0 {
			var buf [4]*bucket
			if ms := c.matched(s, buf[:0]); len(ms) > 0 {
				b = ms[0]
			}
		}
		c.rateHeaders(&s.Response.Header, b, now, false)
	}
	return filters.Continue
}

// rateHeaders writes the DRAFT_VERSION_03 headers (x-ratelimit-limit, the
// bucket's size; -remaining, the tokens left; -reset, seconds to the next
// fill) and, on a rate-limited reply, Retry-After.
func (c *config) rateHeaders(h *l7.Header, b *bucket, now time.Time, limited bool) {
	remaining, reset := b.state(now)
	secs := int64((reset + time.Second - 1) / time.Second)
	var buf [20]byte
	if c.xHeaders {
		h.Set("x-ratelimit-limit", string(strconv.AppendUint(buf[:0], uint64(b.max), 10)))
		h.Set("x-ratelimit-remaining", string(strconv.AppendUint(buf[:0], uint64(remaining), 10)))
		h.Set("x-ratelimit-reset", string(strconv.AppendInt(buf[:0], secs, 10)))
	}
	if limited && c.retryAfter {
		h.Set("retry-after", string(strconv.AppendInt(buf[:0], secs, 10)))
	}
}

// take takes a token for s: from each bucket of the descriptors s matches,
// then (when none matched, or always_consume_default_token_bucket) from the
// default bucket, stopping at the first without one. It returns whether s
// got its tokens, and the bucket the x-ratelimit headers describe: the one
// that had none, else the first descriptor's, else the default.
func (c *config) take(s *filters.Stream, now time.Time) (*bucket, bool) {
	def := c.bucketFor(s, now)
	if len(c.descriptors) == 0 {
		return def, def.take(now)
	}
	var buf [4]*bucket
	ms := c.matched(s, buf[:0])
	for _, b := range ms {
		if !b.take(now) {
			return b, false
		}
	}
	if len(ms) == 0 || c.consumeDefault {
		if !def.take(now) {
			return def, false
		}
	}
	if len(ms) > 0 {
		return ms[0], true
	}
	return def, true
}

// bucketFor is the bucket of s: the config's, or its connection's.
func (c *config) bucketFor(s *filters.Stream, now time.Time) *bucket {
	if c.perConn == nil || s.Downstream == nil {
		return c.bucket
	}
	return c.perConn.get(s.Downstream, c.bucket, now)
}

// bucket is a token bucket: max tokens, filled with perFill tokens at the
// end of every interval (counted from its creation, as Envoy's fill
// timer), full at first.
type bucket struct {
	max, perFill uint32
	interval     time.Duration

	mu     sync.Mutex
	tokens uint32    // guarded by mu
	last   time.Time // the last fill; guarded by mu
}

func newBucket(max, perFill uint32, interval time.Duration, now time.Time) *bucket {
	return &bucket{max: max, perFill: perFill, interval: interval, tokens: max, last: now}
}

// refill adds the fills due at now. Called with mu held.
func (b *bucket) refill(now time.Time) {
	n := now.Sub(b.last) / b.interval
	if n <= 0 {
		return
	}
	b.last = b.last.Add(n * b.interval)
	if add := uint64(n) * uint64(b.perFill); add >= uint64(b.max-b.tokens) {
		b.tokens = b.max
	} else {
		b.tokens += uint32(add)
	}
}

// take takes a token, reporting whether there was one.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}

// state returns the tokens left and the time to the next fill.
func (b *bucket) state(now time.Time) (uint32, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens, b.last.Add(b.interval).Sub(now)
}

// counters are the filter's stats for one stat_prefix.
type counters struct {
	enabled, enforced, rateLimited, ok prometheus.Counter
}

func newCounters(scope filters.Scope, prefix string) (counters, error) {
	var c counters
	err := scope.Counters("envoy_http_local_rate_limit_", "envoy_local_http_ratelimit_prefix", prefix,
		filters.StatCounter{Name: "enabled", Help: "Requests the local rate limiter checked (filter_enabled).", Dst: &c.enabled},
		filters.StatCounter{Name: "enforced", Help: "Requests the local rate limiter answered (filter_enforced).", Dst: &c.enforced},
		filters.StatCounter{Name: "rate_limited", Help: "Requests that found no token, enforced or not.", Dst: &c.rateLimited},
		filters.StatCounter{Name: "ok", Help: "Requests that took a token.", Dst: &c.ok})
	return c, err
}

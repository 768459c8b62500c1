package filters

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Upstream sends requests to clusters. The proxy provides one on every
// Stream (Stream.Upstream), to the clusters of the stream's config; the
// router is its main user, and any filter may call a cluster through it
// (an authorization service, say). A filter that calls out on its own,
// outside a stream, has one in its BuildContext, to the clusters of the
// config in force at each call. Safe for concurrent use.
type Upstream interface {
	// RoundTrip picks an endpoint of req.Cluster, sends req.Request there
	// (its Body streamed) and returns once the response headers are in; the
	// response Body streams, and must be read to io.EOF or closed (if it is
	// an io.Closer) for the connection to be reused. Cancelling ctx (the
	// downstream left) and req.Deadline end the exchange, body included. Errors are status errors (protocols/status):
	// NoCluster, NoHealthyUpstream, Overflow, ConnectFailure,
	// RefusedStream, UpstreamReset, Timeout.
	RoundTrip(ctx context.Context, req *UpstreamRequest) (*l7.Response, error)
}

// RetryLimiter is implemented by an Upstream whose clusters bound the
// retries in flight (a circuit breaker's max_retries, a retry budget). The
// router takes a retry's slot when it decides to retry, as Envoy's retry
// state does: refused, it does not retry and keeps the answer it has, with
// the flag UO. release gives the slot back; it is called once.
type RetryLimiter interface {
	TryRetry(cluster string) (release func(), ok bool)
}

// UpstreamRequest is one try of a request to a cluster.
type UpstreamRequest struct {
	Cluster string
	Request *l7.Request
	// Hash, when HasHash, keys ring-hash balancing.
	Hash    uint64
	HasHash bool
	// Exclude lists endpoints a retry should avoid (previous_hosts);
	// MaxHostSelectionAttempts bounds how hard to try (Envoy's
	// host_selection_retry_max_attempts, default 1).
	Exclude                  []netip.AddrPort
	MaxHostSelectionAttempts int
	// Retry marks a retry, which counts against the cluster's max_retries
	// circuit breaker, unless RetryHeld: the caller took the retry's slot
	// already (RetryLimiter).
	Retry     bool
	RetryHeld bool
	// Deadline, when not zero, bounds the whole exchange, response body
	// included (the route and per-try timeouts): past it the upstream
	// fails with a Timeout.
	Deadline time.Time
	// Downstream is where the request came from; nil for a call a filter
	// makes on its own (BuildContext.Upstream).
	Downstream *Downstream

	// Host is set by the Upstream to the endpoint tried.
	Host netip.AddrPort
	// HashUsed is set by the Upstream when the cluster's balancer keys its
	// pick on the hash (ring hash, Maglev): only then does Envoy compute
	// the hash, and so generate a hash policy's cookie (the router's
	// Set-Cookie).
	HashUsed bool
}

// CallWhole sends req through up and hands fn the response with its whole
// body, read before the response goes back to the Upstream (closing the
// body hands it back, status and headers included): fn must keep nothing
// of resp past its return. A body longer than limit bytes is an error, and
// fn is not called; CallWhole returns RoundTrip's, the read's or fn's
// error. For the calls filters make on their own (a JWKS fetch, an
// authorization check), whose answers are small and read whole.
func CallWhole(ctx context.Context, up Upstream, req *UpstreamRequest, limit int, fn func(resp *l7.Response, body []byte) error) error {
	if up == nil {
		return fmt.Errorf("no upstream to reach cluster %s", req.Cluster)
	}
	resp, err := up.RoundTrip(ctx, req)
	if err != nil {
		return err
	}
	if c, ok := resp.Body.(io.Closer); ok {
		defer c.Close()
	}
	var body []byte
	if resp.Body != nil {
		if body, err = io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1)); err != nil {
			return err
		}
		if len(body) > limit {
			return fmt.Errorf("a response body from cluster %s larger than %d bytes", req.Cluster, limit)
		}
	}
	return fn(resp, body)
}

package route

import (
	"fmt"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// RetryOn is a set of retry conditions (Envoy's x-envoy-retry-on and
// x-envoy-retry-grpc-on values).
type RetryOn uint32

// Retry conditions.
const (
	Retry5xx                     RetryOn = 1 << iota // 5xx
	RetryGatewayError                                // gateway-error
	RetryReset                                       // reset
	RetryResetBeforeRequest                          // reset-before-request
	RetryConnectFailure                              // connect-failure
	RetryEnvoyRateLimited                            // envoy-ratelimited
	RetryRetriable4xx                                // retriable-4xx
	RetryRefusedStream                               // refused-stream
	RetryRetriableStatusCodes                        // retriable-status-codes
	RetryRetriableHeaders                            // retriable-headers
	RetryHTTP3PostConnectFailure                     // http3-post-connect-failure
	RetryGRPCCancelled                               // cancelled
	RetryGRPCDeadlineExceeded                        // deadline-exceeded
	RetryGRPCInternal                                // internal
	RetryGRPCResourceExhausted                       // resource-exhausted
	RetryGRPCUnavailable                             // unavailable
)

var retryConditions = map[string]RetryOn{
	"5xx":                        Retry5xx,
	"gateway-error":              RetryGatewayError,
	"reset":                      RetryReset,
	"reset-before-request":       RetryResetBeforeRequest,
	"connect-failure":            RetryConnectFailure,
	"envoy-ratelimited":          RetryEnvoyRateLimited,
	"retriable-4xx":              RetryRetriable4xx,
	"refused-stream":             RetryRefusedStream,
	"retriable-status-codes":     RetryRetriableStatusCodes,
	"retriable-headers":          RetryRetriableHeaders,
	"http3-post-connect-failure": RetryHTTP3PostConnectFailure,
	"cancelled":                  RetryGRPCCancelled,
	"deadline-exceeded":          RetryGRPCDeadlineExceeded,
	"internal":                   RetryGRPCInternal,
	"resource-exhausted":         RetryGRPCResourceExhausted,
	"unavailable":                RetryGRPCUnavailable,
}

// ParseRetryOn parses a comma-separated list of retry conditions, as in
// retry_on or the x-envoy-retry-on header: tokens are trimmed, empty ones
// skipped. Unlike Envoy, which ignores unknown tokens, an unknown condition
// is an error naming it.
func ParseRetryOn(s string) (RetryOn, error) {
	var on RetryOn
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		c, ok := retryConditions[tok]
		if !ok {
			return 0, fmt.Errorf("unknown retry condition %q", tok)
		}
		on |= c
	}
	return on, nil
}

// Has reports whether every condition of c is in on.
func (on RetryOn) Has(c RetryOn) bool { return on&c == c }

// Retry defaults, as Envoy's.
const (
	// DefaultNumRetries applies when a retry policy does not set num_retries.
	DefaultNumRetries = 1
	// DefaultRetryBaseInterval is the back-off base without retry_back_off.
	DefaultRetryBaseInterval = 25 * time.Millisecond
	// DefaultHostSelectionMaxAttempts is host_selection_retry_max_attempts'
	// default.
	DefaultHostSelectionMaxAttempts = 1
)

// RetryPolicy is a decoded envoy.config.route.v3.RetryPolicy. It is
// read-only: shared by every stream of the route.
type RetryPolicy struct {
	// RetryOn is the set of conditions that allow a retry.
	RetryOn RetryOn
	// NumRetries is the number of retries allowed; default 1.
	NumRetries uint32
	// PerTryTimeout bounds each attempt; 0: only the route timeout.
	PerTryTimeout time.Duration
	// PerTryIdleTimeout bounds each attempt's idle time; 0: none.
	PerTryIdleTimeout time.Duration
	// BaseInterval and MaxInterval bound the fully jittered exponential
	// back-off between attempts; defaults 25 ms and 10 × BaseInterval.
	// Sub-millisecond values are raised to 1 ms, as Envoy does.
	BaseInterval, MaxInterval time.Duration
	// RetriableStatusCodes are the statuses retried under
	// retriable-status-codes.
	RetriableStatusCodes []uint32
	// PreviousHosts is set when retry_host_predicate has
	// envoy.retry_host_predicates.previous_hosts: a retry avoids the hosts
	// already tried.
	PreviousHosts bool
	// HostSelectionMaxAttempts is how many times host selection is
	// re-run to satisfy the host predicates; default 1.
	HostSelectionMaxAttempts int64

	retriableHeaders        headerMatchers
	retriableRequestHeaders headerMatchers
}

// RetriableResponse reports whether the response's headers match one of
// retriable_headers (the retriable-headers condition); false when there
// are none.
func (p *RetryPolicy) RetriableResponse(resp *l7.Response) bool {
	if len(p.retriableHeaders) == 0 {
		return false
	}
	c := matchCtx{resp: resp}
	defer c.release()
	for i := range p.retriableHeaders {
		if p.retriableHeaders[i].matches(&c) {
			return true
		}
	}
	return false
}

// RetriableRequest reports whether the request may be retried at all:
// true without retriable_request_headers, else when one of them matches.
func (p *RetryPolicy) RetriableRequest(req *l7.Request) bool {
	if len(p.retriableRequestHeaders) == 0 {
		return true
	}
	c := matchCtx{req: req}
	defer c.release()
	for i := range p.retriableRequestHeaders {
		if p.retriableRequestHeaders[i].matches(&c) {
			return true
		}
	}
	return false
}

// RetriableStatus reports whether status is one of RetriableStatusCodes.
func (p *RetryPolicy) RetriableStatus(status int) bool {
	for _, c := range p.RetriableStatusCodes {
		if int(c) == status {
			return true
		}
	}
	return false
}

const previousHostsName = "envoy.retry_host_predicates.previous_hosts"

// compileRetryPolicy decodes pb; errors are relative to it.
func compileRetryPolicy(pb *routev3.RetryPolicy) (*RetryPolicy, error) {
	p := &RetryPolicy{
		NumRetries:               DefaultNumRetries,
		BaseInterval:             DefaultRetryBaseInterval,
		HostSelectionMaxAttempts: DefaultHostSelectionMaxAttempts,
		RetriableStatusCodes:     slices.Clone(pb.GetRetriableStatusCodes()),
	}
	var err error
	if p.RetryOn, err = ParseRetryOn(pb.GetRetryOn()); err != nil {
		return nil, pbcheck.At("retry_on", err)
	}
	if pb.GetNumRetries() != nil {
		p.NumRetries = pb.GetNumRetries().GetValue()
	}
	if p.PerTryTimeout, err = duration(pb.GetPerTryTimeout(), 0); err != nil {
		return nil, pbcheck.At("per_try_timeout", err)
	}
	if p.PerTryIdleTimeout, err = duration(pb.GetPerTryIdleTimeout(), 0); err != nil {
		return nil, pbcheck.At("per_try_idle_timeout", err)
	}
	if b := pb.GetRetryBackOff(); b != nil {
		if b.GetBaseInterval() == nil {
			return nil, pbcheck.ErrAt("retry_back_off.base_interval", "required")
		}
		if p.BaseInterval, err = duration(b.GetBaseInterval(), 0); err != nil {
			return nil, pbcheck.At("retry_back_off.base_interval", err)
		}
		p.BaseInterval = max(p.BaseInterval, time.Millisecond)
		if b.GetMaxInterval() != nil {
			if p.MaxInterval, err = duration(b.GetMaxInterval(), 0); err != nil {
				return nil, pbcheck.At("retry_back_off.max_interval", err)
			}
			p.MaxInterval = max(p.MaxInterval, time.Millisecond)
			if p.MaxInterval < p.BaseInterval {
				return nil, pbcheck.ErrAt("retry_back_off.max_interval", "%v is less than base_interval %v", p.MaxInterval, p.BaseInterval)
			}
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 10 * p.BaseInterval
	}
	for i, hp := range pb.GetRetryHostPredicate() {
		if err := checkPreviousHosts(hp); err != nil {
			return nil, pbcheck.At(pbcheck.Idx("retry_host_predicate", i), err)
		}
		p.PreviousHosts = true
	}
	if n := pb.GetHostSelectionRetryMaxAttempts(); n != 0 {
		if n < 0 {
			return nil, pbcheck.ErrAt("host_selection_retry_max_attempts", "must not be negative, got %d", n)
		}
		p.HostSelectionMaxAttempts = n
	}
	if p.retriableHeaders, err = compileHeaderMatchers(pb.GetRetriableHeaders(), "retriable_headers"); err != nil {
		return nil, err
	}
	if p.retriableRequestHeaders, err = compileHeaderMatchers(pb.GetRetriableRequestHeaders(), "retriable_request_headers"); err != nil {
		return nil, err
	}
	return p, nil
}

// checkPreviousHosts accepts the only host predicate implemented.
func checkPreviousHosts(hp *routev3.RetryPolicy_RetryHostPredicate) error {
	want := string((&previoushostsv3.PreviousHostsPredicate{}).ProtoReflect().Descriptor().FullName())
	tc := hp.GetTypedConfig()
	switch {
	case tc != nil && string(tc.MessageName()) != want:
		return pbcheck.ErrAt("typed_config", "unsupported retry host predicate %s (only %s)", tc.GetTypeUrl(), want)
	case tc == nil && hp.GetName() != previousHostsName:
		return pbcheck.ErrAt("name", "unsupported retry host predicate %q (only %s)", hp.GetName(), previousHostsName)
	case tc != nil:
		var m previoushostsv3.PreviousHostsPredicate
		if err := proto.Unmarshal(tc.GetValue(), &m); err != nil {
			return pbcheck.ErrAt("typed_config", "decoding %s: %v", tc.GetTypeUrl(), err)
		}
		if err := allowlist.Check(m.ProtoReflect()); err != nil {
			return pbcheck.At("typed_config", err)
		}
	}
	return nil
}

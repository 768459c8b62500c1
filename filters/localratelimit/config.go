package localratelimit

import (
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// config is a decoded LocalRateLimit. Read-only but for its bucket.
type config struct {
	bucket            *bucket      // nil: no token_bucket, nothing limited
	perConn           *connBuckets // local_rate_limit_per_downstream_connection: bucket is their template
	descriptors       []descriptor
	rateLimits        []rateLimit // make a request's descriptors
	consumeDefault    bool        // always_consume_default_token_bucket: take from bucket when a descriptor matched too
	enabled, enforced filters.Fraction
	status            int
	grpcStatus        *int // rate_limited_as_resource_exhausted: RESOURCE_EXHAUSTED; nil: mapped from status
	requestHeaders    headerAdds
	responseHeaders   headerAdds
	xHeaders          bool // enable_x_ratelimit_headers: DRAFT_VERSION_03
	retryAfter        bool
	stats             counters
}

// the stage, cluster-wide limits, the route's rate_limits (the filter's own
// are taken) and dynamic descriptors are refused: not implemented.
var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit": pbcheck.F("stat_prefix", "status", "token_bucket",
		"filter_enabled", "filter_enforced", "request_headers_to_add_when_not_enforced", "response_headers_to_add",
		"enable_x_ratelimit_headers", "rate_limited_as_resource_exhausted", "enable_retry_after_header",
		"local_rate_limit_per_downstream_connection", "descriptors*", "rate_limits*", "always_consume_default_token_bucket"), // descriptors, rate_limits: decodeDescriptors, decodeRateLimits
	"envoy.type.v3.HttpStatus":                      pbcheck.F("code"),
	"envoy.type.v3.TokenBucket":                     pbcheck.F("max_tokens", "tokens_per_fill", "fill_interval"),
	"envoy.config.core.v3.RuntimeFractionalPercent": pbcheck.F("default_value", "runtime_key"),
	"envoy.type.v3.FractionalPercent":               pbcheck.F("numerator", "denominator"),
	"envoy.config.core.v3.HeaderValueOption":        pbcheck.F("header", "append", "append_action", "keep_empty_value"),
	"envoy.config.core.v3.HeaderValue":              pbcheck.F("key", "value", "raw_value"),
}

var resourceExhausted = 8

func decode(ctx filters.BuildContext, m proto.Message) (*config, error) {
	pb, ok := m.(*lrlv3.LocalRateLimit)
	if !ok {
		return nil, fmt.Errorf("%s: config is %T, want LocalRateLimit", Name, m)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if err := pb.ValidateAll(); err != nil {
		return nil, err
	}
	c := &config{status: 429}
	if code := int(pb.GetStatus().GetCode()); code >= 400 {
		c.status = code // Envoy takes 429 for a code under 400
	}
	now := time.Now()
	if tb := pb.GetTokenBucket(); tb != nil {
		b, err := decodeBucket(tb, now)
		if err != nil {
			return nil, pbcheck.At("token_bucket", err)
		}
		c.bucket = b
		if pb.GetLocalRateLimitPerDownstreamConnection() {
			c.perConn = &connBuckets{}
		}
	}
	if len(pb.GetDescriptors()) > 0 {
		switch {
		case c.bucket == nil:
			return nil, pbcheck.ErrAt("descriptors", "a token_bucket is required with descriptors")
		case c.perConn != nil:
			return nil, pbcheck.ErrAt("descriptors", "not supported with local_rate_limit_per_downstream_connection")
		case len(pb.GetRateLimits()) == 0:
			return nil, pbcheck.ErrAt("descriptors", "the filter's rate_limits are required to make a request's descriptors (a route's rate_limits are not supported)")
		}
		var err error
		if c.descriptors, err = decodeDescriptors(pb.GetDescriptors(), now); err != nil {
			return nil, err
		}
	}
	var err error
	if c.rateLimits, err = decodeRateLimits(pb.GetRateLimits()); err != nil {
		return nil, err
	}
	c.consumeDefault = pb.GetAlwaysConsumeDefaultTokenBucket() == nil || pb.GetAlwaysConsumeDefaultTokenBucket().GetValue()
	if c.enabled, err = decodeFraction(pb.GetFilterEnabled()); err != nil {
		return nil, pbcheck.At("filter_enabled", err)
	}
	if c.enforced, err = decodeFraction(pb.GetFilterEnforced()); err != nil {
		return nil, pbcheck.At("filter_enforced", err)
	}
	if c.requestHeaders, err = decodeHeaders(pb.GetRequestHeadersToAddWhenNotEnforced(), "request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	if c.responseHeaders, err = decodeHeaders(pb.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	switch v := pb.GetEnableXRatelimitHeaders(); v {
	case ratelimitv3.XRateLimitHeadersRFCVersion_OFF:
	case ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		c.xHeaders = true
	default:
		return nil, pbcheck.ErrAt("enable_x_ratelimit_headers", "%v is not supported", v)
	}
	if pb.GetRateLimitedAsResourceExhausted() {
		c.grpcStatus = &resourceExhausted
	}
	c.retryAfter = pb.GetEnableRetryAfterHeader()
	if c.stats, err = newCounters(ctx.Stats, pb.GetStatPrefix()); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeBucket reads a TokenBucket (tokens_per_fill defaults to 1), full
// at now.
func decodeBucket(tb *typev3.TokenBucket, now time.Time) (*bucket, error) {
	if tb == nil {
		return nil, fmt.Errorf("required")
	}
	if err := allowlist.Check(tb.ProtoReflect()); err != nil {
		return nil, err
	}
	perFill := uint32(1)
	if v := tb.GetTokensPerFill(); v != nil {
		perFill = v.GetValue()
	}
	interval := tb.GetFillInterval().AsDuration()
	if interval < 50*time.Millisecond {
		return nil, pbcheck.ErrAt("fill_interval", "%v is under 50ms, Envoy's least", interval)
	}
	return newBucket(tb.GetMaxTokens(), perFill, interval, now), nil
}

// decodeFraction reads a RuntimeFractionalPercent's default value (the
// waypoint has no runtime): unset is 0%, as in Envoy.
func decodeFraction(p *corev3.RuntimeFractionalPercent) (filters.Fraction, error) {
	f, err := filters.DecodeFraction(p.GetDefaultValue())
	return f, pbcheck.At("default_value", err)
}

// headerAdd is one HeaderValueOption with a literal value.
type headerAdd struct {
	name, value string
	action      corev3.HeaderValueOption_HeaderAppendAction
	keepEmpty   bool
}

type headerAdds []headerAdd

func decodeHeaders(pbs []*corev3.HeaderValueOption, field string) (headerAdds, error) {
	var out headerAdds
	for i, o := range pbs {
		at := pbcheck.Idx(field, i)
		h := o.GetHeader()
		name := strings.ToLower(h.GetKey())
		if name == "" || name[0] == ':' || name == "host" {
			return nil, pbcheck.ErrAt(at+".header.key", "%q may not be modified", h.GetKey())
		}
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if strings.Contains(v, "%") {
			return nil, pbcheck.ErrAt(at+".header.value", "%q: command operators (%%...%%) are not supported here yet", v)
		}
		a := headerAdd{name: name, value: v, action: o.GetAppendAction(), keepEmpty: o.GetKeepEmptyValue()}
		if o.GetAppend() != nil && !o.GetAppend().GetValue() {
			a.action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
		out = append(out, a)
	}
	return out, nil
}

// apply adds the headers as Envoy's header parser does.
func (hs headerAdds) apply(h *l7.Header) {
	for _, a := range hs {
		if a.value == "" && !a.keepEmpty {
			continue
		}
		switch a.action {
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !h.Has(a.name) {
				h.Add(a.name, a.value)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(a.name, a.value)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if h.Has(a.name) {
				h.Set(a.name, a.value)
			}
		default:
			h.Add(a.name, a.value)
		}
	}
}

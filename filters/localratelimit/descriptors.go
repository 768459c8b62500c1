package localratelimit

import (
	"fmt"
	"slices"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// descriptor is a configured descriptor: its entries and its own bucket.
type descriptor struct {
	entries []entry
	bucket  *bucket
}

type entry struct{ key, value string }

// rateLimit is one of the config's rate_limits: its actions make one
// descriptor of a request, or none.
type rateLimit struct{ actions []action }

type actionKind uint8

const (
	actGenericKey actionKind = iota
	actRequestHeader
	actRemoteAddress
	actHeaderValueMatch
)

type action struct {
	kind         actionKind
	key, value   string // the entry's key; its value (generic_key, header_value_match)
	header       string // request_headers
	skipIfAbsent bool
	match        route.HeaderMatch // header_value_match
	expectMatch  bool
}

var descriptorAllowlist = pbcheck.Allowlist{
	"envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor":  pbcheck.F("entries", "token_bucket"),
	"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry": pbcheck.F("key", "value"),
	"envoy.type.v3.TokenBucket":                                      pbcheck.F("max_tokens", "tokens_per_fill", "fill_interval"),
	// stage, limit and hits_addend are the global rate limit's.
	"envoy.config.route.v3.RateLimit": pbcheck.F("actions"),
	"envoy.config.route.v3.RateLimit.Action": pbcheck.F("generic_key", "request_headers", "remote_address",
		"header_value_match"),
	"envoy.config.route.v3.RateLimit.Action.GenericKey":       pbcheck.F("descriptor_key", "descriptor_value"),
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":   pbcheck.F("header_name", "descriptor_key", "skip_if_absent"),
	"envoy.config.route.v3.RateLimit.Action.RemoteAddress":    pbcheck.F(),
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch": pbcheck.F("descriptor_key", "descriptor_value", "expect_match", "headers*"), // headers: route.CompileHeaderMatch
}

func decodeDescriptors(pbs []*ratelimitv3.LocalRateLimitDescriptor, now time.Time) ([]descriptor, error) {
	var out []descriptor
	for i, pb := range pbs {
		at := pbcheck.Idx("descriptors", i)
		if err := descriptorAllowlist.Check(pb.ProtoReflect()); err != nil {
			return nil, pbcheck.At(at, err)
		}
		d := descriptor{}
		for j, e := range pb.GetEntries() {
			if err := descriptorAllowlist.Check(e.ProtoReflect()); err != nil {
				return nil, pbcheck.At(at, err)
			}
			if e.GetValue() == "" {
				return nil, pbcheck.ErrAt(pbcheck.Idx(at+".entries", j)+".value", "an entry without a value (a wildcard) is not supported")
			}
			d.entries = append(d.entries, entry{e.GetKey(), e.GetValue()})
		}
		tb := pb.GetTokenBucket()
		b, err := decodeBucket(tb, now)
		if err != nil {
			return nil, pbcheck.At(at+".token_bucket", err)
		}
		d.bucket = b
		out = append(out, d)
	}
	return out, nil
}

func decodeRateLimits(pbs []*routev3.RateLimit) ([]rateLimit, error) {
	var out []rateLimit
	for i, pb := range pbs {
		at := pbcheck.Idx("rate_limits", i)
		if err := descriptorAllowlist.Check(pb.ProtoReflect()); err != nil {
			return nil, pbcheck.At(at, err)
		}
		var rl rateLimit
		for j, a := range pb.GetActions() {
			aat := pbcheck.Idx(at+".actions", j)
			if err := descriptorAllowlist.Check(a.ProtoReflect()); err != nil {
				return nil, pbcheck.At(aat, err)
			}
			var act action
			switch s := a.GetActionSpecifier().(type) {
			case *routev3.RateLimit_Action_GenericKey_:
				act = action{kind: actGenericKey, key: s.GenericKey.GetDescriptorKey(), value: s.GenericKey.GetDescriptorValue()}
				if act.key == "" {
					act.key = "generic_key"
				}
			case *routev3.RateLimit_Action_RequestHeaders_:
				act = action{kind: actRequestHeader, key: s.RequestHeaders.GetDescriptorKey(),
					header: lowerASCII(s.RequestHeaders.GetHeaderName()), skipIfAbsent: s.RequestHeaders.GetSkipIfAbsent()}
			case *routev3.RateLimit_Action_RemoteAddress_:
				act = action{kind: actRemoteAddress, key: "remote_address"}
			case *routev3.RateLimit_Action_HeaderValueMatch_:
				hv := s.HeaderValueMatch
				m, err := route.CompileHeaderMatch(hv.GetHeaders(), aat+".header_value_match.headers")
				if err != nil {
					return nil, err
				}
				act = action{kind: actHeaderValueMatch, key: hv.GetDescriptorKey(), value: hv.GetDescriptorValue(), match: m,
					expectMatch: hv.GetExpectMatch() == nil || hv.GetExpectMatch().GetValue()}
				if act.key == "" {
					act.key = "header_match"
				}
			default:
				return nil, fmt.Errorf("%s: an action is required", aat)
			}
			rl.actions = append(rl.actions, act)
		}
		out = append(out, rl)
	}
	return out, nil
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// entriesOf makes rl's descriptor of s into buf; ok is false when an action
// gives none (a header absent without skip_if_absent, a header match that
// does not come out as expected, no remote address).
func (rl *rateLimit) entriesOf(s *filters.Stream, buf []entry) ([]entry, bool) {
	for i := range rl.actions {
		a := &rl.actions[i]
		switch a.kind {
		case actGenericKey:
			buf = append(buf, entry{a.key, a.value})
		case actRequestHeader:
			v, ok := s.Request.Header.Get(a.header)
			if !ok {
				if a.skipIfAbsent {
					continue
				}
				return buf, false
			}
			buf = append(buf, entry{a.key, string(v)})
		case actRemoteAddress:
			addr := s.TrustedRemoteAddr()
			if !addr.IsValid() {
				return buf, false
			}
			buf = append(buf, entry{a.key, addr.Addr().Unmap().String()})
		case actHeaderValueMatch:
			if a.match.Matches(s.Request) != a.expectMatch {
				return buf, false
			}
			buf = append(buf, entry{a.key, a.value})
		}
	}
	return buf, len(buf) > 0
}

// matched returns the buckets of the configured descriptors that s's
// descriptors equal, in the config's order, appended to out.
func (c *config) matched(s *filters.Stream, out []*bucket) []*bucket {
	var scratch [8]entry
	for i := range c.rateLimits {
		es, ok := c.rateLimits[i].entriesOf(s, scratch[:0])
		if !ok {
			continue
		}
		for j := range c.descriptors {
			if d := &c.descriptors[j]; slices.Equal(d.entries, es) && !slices.Contains(out, d.bucket) {
				out = append(out, d.bucket)
			}
		}
	}
	return out
}

package accesslog

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Filter is a decoded AccessLogFilter: which finished requests or
// connections an access log writes a line for. Read-only; Match does not
// allocate.
//
// Implemented: status_code_filter and duration_filter (a comparison of the
// response code, 0 when there is none, or of the duration in milliseconds,
// with the value's default_value: the waypoint has no runtime, so a
// runtime_key, such as istiod's "istio.io/unset", changes nothing),
// response_flag_filter (any of the flags, or any flag at all when none is
// listed), grpc_status_filter (the grpc-status of the trailers or headers,
// else the one the response code maps to; statuses, exclude),
// runtime_filter (its percent_sampled, drawn at random: without a runtime
// layer the key changes nothing, and use_independent_randomness is what
// the waypoint always does), not_health_check_filter (the waypoint serves
// no health checks: always true), and_filter, or_filter, and the CEL
// extension filter
// (envoy.access_loggers.extension_filters.cel: an expression over the
// request's attributes, see CEL; the only filter that allocates). The
// others are refused by name.
type Filter struct {
	kind  filterKind
	cel   *CEL
	op    accesslogv3.ComparisonFilter_Op
	value uint64
	flags filters.Flags // response_flag_filter: any of them; 0 means any flag
	subs  []*Filter

	grpcStatuses uint32 // grpc_status_filter: bit n for status n (0 to 16)
	exclude      bool   // grpc_status_filter: log the other statuses
	sampled      filters.Fraction
}

type filterKind uint8

const (
	filterStatusCode filterKind = iota
	filterDuration
	filterResponseFlag
	filterNotHealthCheck
	filterAnd
	filterOr
	filterCEL
	filterGRPCStatus
	filterRuntime
)

// CELFilterName is Envoy's CEL access log filter.
const CELFilterName = "envoy.access_loggers.extension_filters.cel"

var filterAllowlist = pbcheck.Allowlist{
	"envoy.config.accesslog.v3.AccessLogFilter": pbcheck.F("status_code_filter", "duration_filter", "not_health_check_filter",
		"and_filter", "or_filter", "response_flag_filter", "grpc_status_filter", "runtime_filter"),
	"envoy.config.accesslog.v3.GrpcStatusFilter":     pbcheck.F("statuses", "exclude"),
	"envoy.config.accesslog.v3.RuntimeFilter":        pbcheck.F("runtime_key", "percent_sampled", "use_independent_randomness"),
	"envoy.type.v3.FractionalPercent":                pbcheck.F("numerator", "denominator"),
	"envoy.config.accesslog.v3.StatusCodeFilter":     pbcheck.F("comparison"),
	"envoy.config.accesslog.v3.DurationFilter":       pbcheck.F("comparison"),
	"envoy.config.accesslog.v3.ComparisonFilter":     pbcheck.F("op", "value"),
	"envoy.config.core.v3.RuntimeUInt32":             pbcheck.F("default_value", "runtime_key"),
	"envoy.config.accesslog.v3.NotHealthCheckFilter": pbcheck.F(),
	"envoy.config.accesslog.v3.AndFilter":            pbcheck.F("filters*"), // each by DecodeFilter
	"envoy.config.accesslog.v3.OrFilter":             pbcheck.F("filters*"),
	"envoy.config.accesslog.v3.ResponseFlagFilter":   pbcheck.F("flags"),
	// cel_config's options (string conversion, concatenation...) are refused.
	"envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter": pbcheck.F("expression"),
}

// DecodeFilter decodes an AccessLogFilter; errors name the field relative
// to it.
func DecodeFilter(pb *accesslogv3.AccessLogFilter) (*Filter, error) {
	if ext := pb.GetExtensionFilter(); ext != nil {
		var ef celv3.ExpressionFilter
		if ext.GetTypedConfig().MessageName() != ef.ProtoReflect().Descriptor().FullName() {
			return nil, pbcheck.ErrAt("extension_filter", "%q (%s) is not supported: only %s", ext.GetName(), ext.GetTypedConfig().GetTypeUrl(), CELFilterName)
		}
		if err := ext.GetTypedConfig().UnmarshalTo(&ef); err != nil {
			return nil, pbcheck.At("extension_filter.typed_config", err)
		}
		if err := filterAllowlist.Check(ef.ProtoReflect()); err != nil {
			return nil, pbcheck.At("extension_filter.typed_config", err)
		}
		c, err := CompileCEL(ef.GetExpression())
		if err != nil {
			return nil, pbcheck.At("extension_filter.typed_config.expression", err)
		}
		return &Filter{kind: filterCEL, cel: c}, nil
	}
	if err := filterAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	switch s := pb.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		return comparison(filterStatusCode, "status_code_filter", s.StatusCodeFilter.GetComparison())
	case *accesslogv3.AccessLogFilter_DurationFilter:
		return comparison(filterDuration, "duration_filter", s.DurationFilter.GetComparison())
	case *accesslogv3.AccessLogFilter_NotHealthCheckFilter:
		return &Filter{kind: filterNotHealthCheck}, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		f := &Filter{kind: filterResponseFlag}
		for i, name := range s.ResponseFlagFilter.GetFlags() {
			fl := filters.FlagFor(name)
			if fl == 0 {
				return nil, pbcheck.ErrAt(pbcheck.Idx("response_flag_filter.flags", i), "unknown response flag %q", name)
			}
			f.flags |= fl
		}
		return f, nil
	case *accesslogv3.AccessLogFilter_GrpcStatusFilter:
		f := &Filter{kind: filterGRPCStatus, exclude: s.GrpcStatusFilter.GetExclude()}
		for _, st := range s.GrpcStatusFilter.GetStatuses() {
			f.grpcStatuses |= 1 << uint(st)
		}
		return f, nil
	case *accesslogv3.AccessLogFilter_RuntimeFilter:
		fr, err := filters.DecodeFraction(s.RuntimeFilter.GetPercentSampled())
		if err != nil {
			return nil, pbcheck.At("runtime_filter.percent_sampled", err)
		}
		return &Filter{kind: filterRuntime, sampled: fr}, nil
	case *accesslogv3.AccessLogFilter_AndFilter:
		return combine(filterAnd, "and_filter", s.AndFilter.GetFilters())
	case *accesslogv3.AccessLogFilter_OrFilter:
		return combine(filterOr, "or_filter", s.OrFilter.GetFilters())
	}
	return nil, fmt.Errorf("a filter is required")
}

func comparison(kind filterKind, name string, c *accesslogv3.ComparisonFilter) (*Filter, error) {
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ, accesslogv3.ComparisonFilter_GE, accesslogv3.ComparisonFilter_LE, accesslogv3.ComparisonFilter_NE:
	default:
		return nil, pbcheck.ErrAt(name+".comparison.op", "%v is not supported", c.GetOp())
	}
	if c.GetValue() == nil {
		return nil, pbcheck.ErrAt(name+".comparison.value", "required")
	}
	return &Filter{kind: kind, op: c.GetOp(), value: uint64(c.GetValue().GetDefaultValue())}, nil
}

func combine(kind filterKind, name string, pbs []*accesslogv3.AccessLogFilter) (*Filter, error) {
	if len(pbs) < 2 {
		return nil, pbcheck.ErrAt(name+".filters", "want at least 2 filters, got %d", len(pbs))
	}
	f := &Filter{kind: kind}
	for i, pb := range pbs {
		sub, err := DecodeFilter(pb)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx(name+".filters", i), err)
		}
		f.subs = append(f.subs, sub)
	}
	return f, nil
}

func (f *Filter) compare(v uint64) bool {
	switch f.op {
	case accesslogv3.ComparisonFilter_GE:
		return v >= f.value
	case accesslogv3.ComparisonFilter_LE:
		return v <= f.value
	case accesslogv3.ComparisonFilter_NE:
		return v != f.value
	}
	return v == f.value
}

// Match reports whether r is logged. A nil filter logs everything.
func (f *Filter) Match(r *Record) bool {
	if f == nil {
		return true
	}
	switch f.kind {
	case filterStatusCode:
		return f.compare(uint64(max(r.Code, 0)))
	case filterDuration:
		return f.compare(uint64(r.Duration / time.Millisecond))
	case filterResponseFlag:
		if f.flags == 0 {
			return r.Flags != 0
		}
		return r.Flags&f.flags != 0
	case filterAnd:
		for _, s := range f.subs {
			if !s.Match(r) {
				return false
			}
		}
		return true
	case filterOr:
		for _, s := range f.subs {
			if s.Match(r) {
				return true
			}
		}
		return false
	case filterCEL:
		return f.cel.Bool(r)
	case filterGRPCStatus:
		found := f.grpcStatuses&(1<<uint(grpcStatus(r))) != 0
		return found != f.exclude
	case filterRuntime:
		return f.sampled.Sample()
	}
	return true // not_health_check_filter
}

// grpcStatus is r's gRPC status as Envoy's grpc_status_filter reads it:
// grpc-status from the trailers, else the headers, else the one its
// response code maps to (Unknown for a connection or without a code).
func grpcStatus(r *Record) int {
	if resp := r.Response; resp != nil {
		v, ok := resp.Trailer.Get("grpc-status")
		if !ok {
			v, ok = resp.Header.Get("grpc-status")
		}
		if ok {
			n := 0
			for _, c := range v {
				if c < '0' || c > '9' || n > 16 {
					return status.GRPCUnknown
				}
				n = n*10 + int(c-'0')
			}
			if len(v) > 0 && n <= 16 {
				return n
			}
			return status.GRPCUnknown
		}
	}
	if r.Code <= 0 {
		return status.GRPCUnknown
	}
	return status.GRPCFromHTTP(r.Code)
}

// allFlags is every response flag.
var allFlags = func() filters.Flags {
	var all filters.Flags
	for i := 0; ; i++ {
		f := filters.Flags(1) << i
		if f.String() == "" {
			return all
		}
		all |= f
	}
}()

// MayMatch reports whether the filter can log a record of response code
// code whose flags are any set without the flags in absent, whatever its
// duration: false means such records are never logged. A config decoder
// uses it to accept an access log where the waypoint writes only the lines
// that can pass (the HBONE entry's refusals, say), and to refuse one whose
// other lines it would silently not write.
func (f *Filter) MayMatch(code int, absent filters.Flags) bool {
	if f == nil {
		return true
	}
	switch f.kind {
	case filterStatusCode:
		return f.compare(uint64(max(code, 0)))
	case filterResponseFlag:
		if f.flags == 0 {
			return allFlags&^absent != 0
		}
		return f.flags&^absent != 0
	case filterAnd:
		for _, s := range f.subs {
			if !s.MayMatch(code, absent) {
				return false
			}
		}
		return true
	case filterOr:
		for _, s := range f.subs {
			if s.MayMatch(code, absent) {
				return true
			}
		}
		return false
	}
	return true // duration_filter, not_health_check_filter, CEL (which cannot tell)
}

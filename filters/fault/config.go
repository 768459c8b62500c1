package fault

import (
	"fmt"
	"math"
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// config is a decoded HTTPFault. Immutable.
type config struct {
	delay     *delaySpec
	abort     *abortSpec
	maxActive int64 // -1: unlimited
}

type delaySpec struct {
	fixed      time.Duration
	fromHeader bool
	pct        filters.Fraction
}

type abortSpec struct {
	httpStatus int
	grpcStatus int // -1: none
	fromHeader bool
	pct        filters.Fraction
}

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.fault.v3.HTTPFault":                fields("delay", "abort", "max_active_faults"),
	"envoy.extensions.filters.http.fault.v3.FaultAbort":               fields("http_status", "grpc_status", "header_abort", "percentage"),
	"envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort":   fields(),
	"envoy.extensions.filters.common.fault.v3.FaultDelay":             fields("fixed_delay", "header_delay", "percentage"),
	"envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay": fields(),
	"envoy.type.v3.FractionalPercent":                                 fields("numerator", "denominator"),
}

var fields = pbcheck.F

func decode(m proto.Message) (*config, error) {
	c := &config{maxActive: -1}
	if m == nil {
		return c, nil
	}
	pb, ok := m.(*faultv3.HTTPFault)
	if !ok {
		return nil, fmt.Errorf("fault: config is %T, want HTTPFault", m)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if d := pb.GetDelay(); d != nil {
		ds, err := decodeDelay(d)
		if err != nil {
			return nil, pbcheck.At("delay", err)
		}
		c.delay = ds
	}
	if a := pb.GetAbort(); a != nil {
		as, err := decodeAbort(a)
		if err != nil {
			return nil, pbcheck.At("abort", err)
		}
		c.abort = as
	}
	if mx := pb.GetMaxActiveFaults(); mx != nil {
		c.maxActive = int64(mx.GetValue())
	}
	// The generated validation runs last: our own checks name the field
	// the way every other error here does.
	if err := pb.ValidateAll(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeDelay(d *commonfaultv3.FaultDelay) (*delaySpec, error) {
	ds := &delaySpec{}
	switch {
	case d.GetHeaderDelay() != nil:
		ds.fromHeader = true
	case d.GetFixedDelay() != nil:
		ds.fixed = d.GetFixedDelay().AsDuration()
		if ds.fixed < 0 {
			return nil, pbcheck.ErrAt("fixed_delay", "must not be negative")
		}
	default:
		return nil, fmt.Errorf("one of fixed_delay or header_delay is required")
	}
	pct, err := filters.DecodeFraction(d.GetPercentage())
	if err != nil {
		return nil, pbcheck.At("percentage", err)
	}
	ds.pct = pct
	return ds, nil
}

func decodeAbort(a *faultv3.FaultAbort) (*abortSpec, error) {
	as := &abortSpec{grpcStatus: -1}
	switch et := a.GetErrorType().(type) {
	case *faultv3.FaultAbort_HttpStatus:
		if et.HttpStatus < 200 || et.HttpStatus >= 600 {
			return nil, pbcheck.ErrAt("http_status", "%d is not in [200, 600)", et.HttpStatus)
		}
		as.httpStatus = int(et.HttpStatus)
	case *faultv3.FaultAbort_GrpcStatus:
		if et.GrpcStatus > math.MaxInt32 {
			return nil, pbcheck.ErrAt("grpc_status", "%d is out of range", et.GrpcStatus)
		}
		as.grpcStatus = int(et.GrpcStatus)
	case *faultv3.FaultAbort_HeaderAbort_:
		as.fromHeader = true
	default:
		return nil, fmt.Errorf("one of http_status, grpc_status or header_abort is required")
	}
	pct, err := filters.DecodeFraction(a.GetPercentage())
	if err != nil {
		return nil, pbcheck.At("percentage", err)
	}
	as.pct = pct
	return as, nil
}

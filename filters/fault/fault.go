// Package fault is Envoy's fault injection filter, envoy.filters.http.fault:
// it delays requests and aborts them with a chosen HTTP or gRPC status, for
// a percentage of requests, from its own config, a route's
// typed_per_filter_config, or (when configured so) request headers.
package fault

import (
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
)

// Name and TypeURL identify the filter in an HttpConnectionManager.
const (
	Name    = "envoy.filters.http.fault"
	TypeURL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
)

// Headers that control faults when the config asks for header control.
const (
	HeaderAbort           = "x-envoy-fault-abort-request"
	HeaderAbortGRPC       = "x-envoy-fault-abort-grpc-request"
	HeaderAbortPercentage = "x-envoy-fault-abort-request-percentage"
	HeaderDelay           = "x-envoy-fault-delay-request"
	HeaderDelayPercentage = "x-envoy-fault-delay-request-percentage"
)

const (
	localAbortBody = "fault filter abort"
	maxHeaderDelay = time.Hour
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

// New builds the filter from an HTTPFault config.
func (factory) New(_ filters.BuildContext, cfg proto.Message) (*Filter, error) {
	c, err := decode(cfg)
	if err != nil {
		return nil, err
	}
	return &Filter{cfg: c}, nil
}

// ParsePerRoute decodes a route's HTTPFault, which replaces the filter's
// config for that route.
func (factory) ParsePerRoute(_ filters.BuildContext, cfg proto.Message) (any, error) {
	return decode(cfg)
}

// Filter injects faults. Safe for concurrent use; its only state is the
// count of active faults for max_active_faults.
type Filter struct {
	cfg    *config
	active atomic.Int64
}

// OnRequest delays and/or aborts the request as configured.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	cfg := f.cfg
	if r := s.Route(); r != nil {
		if rc, ok := r.FilterConfig(Name).(*config); ok {
			cfg = rc
		}
	}
	if cfg.delay == nil && cfg.abort == nil {
		return filters.Continue
	}
	delay, delayed := cfg.delayFor(s)
	status, grpcStatus, aborted := cfg.abortFor(s)
	if !delayed && !aborted {
		return filters.Continue
	}
	if cfg.maxActive >= 0 {
		if f.active.Add(1) > cfg.maxActive {
			f.active.Add(-1)
			return filters.Continue
		}
		defer f.active.Add(-1)
	}
	if delayed {
		s.AddResponseFlag(filters.FlagDI)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.Context.Done():
			t.Stop()
			return s.SendLocalReply(499, "", filters.FlagDC)
		}
	}
	if aborted {
		s.SendLocalReply(status, localAbortBody, filters.FlagFI)
		if grpcStatus >= 0 {
			s.Local.GRPCStatus = &grpcStatus
		}
		return filters.Stop
	}
	return filters.Continue
}

func (c *config) delayFor(s *filters.Stream) (time.Duration, bool) {
	d := c.delay
	if d == nil {
		return 0, false
	}
	dur := d.fixed
	if d.fromHeader {
		v, ok := s.Request.Header.Get(HeaderDelay)
		if !ok {
			return 0, false
		}
		ms, err := strconv.ParseUint(string(v), 10, 32)
		if err != nil {
			return 0, false
		}
		dur = min(time.Duration(ms)*time.Millisecond, maxHeaderDelay)
	}
	return dur, sample(d.pct, s, HeaderDelayPercentage)
}

// abortFor returns the HTTP status and gRPC status (-1 for none) to abort with.
func (c *config) abortFor(s *filters.Stream) (int, int, bool) {
	a := c.abort
	if a == nil {
		return 0, -1, false
	}
	httpStatus, grpcStatus := a.httpStatus, a.grpcStatus
	if a.fromHeader {
		httpStatus, grpcStatus = 0, -1
		if v, ok := s.Request.Header.Get(HeaderAbort); ok {
			if n, err := strconv.Atoi(string(v)); err == nil && n >= 200 && n < 600 {
				httpStatus = n
			}
		}
		if v, ok := s.Request.Header.Get(HeaderAbortGRPC); ok && s.GRPC {
			if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
				grpcStatus = n
				if httpStatus == 0 {
					httpStatus = 200
				}
			}
		}
		if httpStatus == 0 {
			return 0, -1, false
		}
	}
	if grpcStatus >= 0 && httpStatus == 0 {
		httpStatus = 200
	}
	return httpStatus, grpcStatus, sample(a.pct, s, HeaderAbortPercentage)
}

// sample draws whether this request is in f. A percentage header, when
// present, lowers the numerator (never raises it), as in Envoy.
func sample(f filters.Fraction, s *filters.Stream, header string) bool {
	if v, ok := s.Request.Header.Get(header); ok {
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil && n < f.Numerator {
			f.Numerator = n
		}
	}
	return f.Sample()
}

package xds

import (
	"fmt"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// The resource monitors and overload actions the waypoint implements
// (proxy/overload), by Envoy's extension names.
const (
	MonitorDownstreamConnections = "envoy.resource_monitors.global_downstream_max_connections"
	MonitorFixedHeap             = "envoy.resource_monitors.fixed_heap"

	ActionStopAcceptingConnections = "envoy.overload_actions.stop_accepting_connections"
	ActionStopAcceptingRequests    = "envoy.overload_actions.stop_accepting_requests"
	ActionDisableHTTPKeepAlive     = "envoy.overload_actions.disable_http_keepalive"
	ActionResetHighMemoryStream    = "envoy.overload_actions.reset_high_memory_stream"
	ActionShrinkHeap               = "envoy.overload_actions.shrink_heap"
)

// DefaultOverloadRefreshInterval is Envoy's refresh_interval default.
const DefaultOverloadRefreshInterval = time.Second

// Overload is a bootstrap's overload_manager, decoded and validated.
// Read-only.
type Overload struct {
	// RefreshInterval is how often the monitors are sampled; default 1 s.
	RefreshInterval time.Duration
	// MaxDownstreamConnections is the global_downstream_max_connections
	// monitor's max_active_downstream_connections; 0 when that monitor is
	// not configured.
	MaxDownstreamConnections int64
	// HeapMonitor says the fixed_heap monitor is configured;
	// MaxHeapBytes is its max_heap_size_bytes, 0 meaning the process's
	// GOMEMLIMIT (a decision of ours: Envoy requires a size).
	HeapMonitor  bool
	MaxHeapBytes uint64
	// Actions in the order of the file.
	Actions []OverloadAction
}

// OverloadAction is one action and its triggers.
type OverloadAction struct {
	Name     string
	Triggers []OverloadTrigger
}

// OverloadTrigger sets an action from one monitor's pressure (0 to 1):
// a threshold trigger fires (1) at or above Threshold; a scaled trigger is
// 0 below Scaling, 1 at or above Saturation and linear between.
type OverloadTrigger struct {
	Monitor    string
	Scaled     bool
	Threshold  float64 // threshold triggers
	Scaling    float64 // scaled triggers
	Saturation float64 // scaled triggers
}

// overloadAllowlist is the part of the allowlist for overload_manager.
var overloadAllowlist = pbcheck.Allowlist{
	"envoy.config.overload.v3.OverloadManager":  fields("refresh_interval", "resource_monitors", "actions"),
	"envoy.config.overload.v3.ResourceMonitor":  fields("name", "typed_config"),
	"envoy.config.overload.v3.OverloadAction":   fields("name", "triggers"),
	"envoy.config.overload.v3.Trigger":          fields("name", "threshold", "scaled"),
	"envoy.config.overload.v3.ThresholdTrigger": fields("value"),
	"envoy.config.overload.v3.ScaledTrigger":    fields("scaling_threshold", "saturation_threshold"),
}

var knownActions = map[string]bool{
	ActionStopAcceptingConnections: true, ActionStopAcceptingRequests: true, ActionDisableHTTPKeepAlive: true,
	ActionResetHighMemoryStream: true, ActionShrinkHeap: true,
}

// decodeOverload decodes the bootstrap's overload_manager; nil when it has
// none. Unknown monitors and actions are errors naming them.
func decodeOverload(raw *bootstrapv3.Bootstrap) (*Overload, error) {
	om := raw.GetOverloadManager()
	if om == nil {
		return nil, nil
	}
	o, err := DecodeOverload(om)
	if err != nil {
		return nil, at("overload_manager", err)
	}
	return o, nil
}

// DecodeOverload decodes an OverloadManager message (the bootstrap's
// overload_manager; the command's flags build one too).
func DecodeOverload(om *overloadv3.OverloadManager) (*Overload, error) {
	if err := overloadAllowlist.Check(om.ProtoReflect()); err != nil {
		return nil, err
	}
	o := &Overload{}
	var err error
	if o.RefreshInterval, err = pbcheck.Duration(om.GetRefreshInterval(), DefaultOverloadRefreshInterval); err != nil {
		return nil, at("refresh_interval", err)
	}
	if o.RefreshInterval == 0 {
		return nil, errAt("refresh_interval", "must be positive")
	}
	monitors := map[string]bool{}
	for i, m := range om.GetResourceMonitors() {
		seg := pbcheck.Idx("resource_monitors", i)
		if monitors[m.GetName()] {
			return nil, errAt(seg, "monitor %q configured twice", m.GetName())
		}
		monitors[m.GetName()] = true
		switch m.GetName() {
		case MonitorDownstreamConnections:
			cfg := &downstreamv3.DownstreamConnectionsConfig{}
			if err := unpackMonitor(m.GetTypedConfig(), cfg); err != nil {
				return nil, at(seg+".typed_config", err)
			}
			if cfg.GetMaxActiveDownstreamConnections() <= 0 {
				return nil, errAt(seg+".typed_config.max_active_downstream_connections", "must be positive")
			}
			o.MaxDownstreamConnections = cfg.GetMaxActiveDownstreamConnections()
		case MonitorFixedHeap:
			cfg := &fixedheapv3.FixedHeapConfig{}
			if m.GetTypedConfig() != nil {
				if err := unpackMonitor(m.GetTypedConfig(), cfg); err != nil {
					return nil, at(seg+".typed_config", err)
				}
				if cfg.GetMaxHeapSizeBytesRuntime() != nil {
					return nil, errAt(seg+".typed_config.max_heap_size_bytes_runtime", "not supported (no runtime)")
				}
			}
			o.HeapMonitor, o.MaxHeapBytes = true, cfg.GetMaxHeapSizeBytes()
		default:
			return nil, errAt(seg+".name", "resource monitor %q not supported (supported: %s, %s)", m.GetName(),
				MonitorDownstreamConnections, MonitorFixedHeap)
		}
	}
	actions := map[string]bool{}
	for i, a := range om.GetActions() {
		seg := pbcheck.Idx("actions", i)
		if !knownActions[a.GetName()] {
			return nil, errAt(seg+".name", "overload action %q not supported (supported: %s, %s, %s, %s, %s)", a.GetName(),
				ActionStopAcceptingConnections, ActionStopAcceptingRequests, ActionDisableHTTPKeepAlive,
				ActionResetHighMemoryStream, ActionShrinkHeap)
		}
		if actions[a.GetName()] {
			return nil, errAt(seg, "action %q configured twice", a.GetName())
		}
		actions[a.GetName()] = true
		if len(a.GetTriggers()) == 0 {
			return nil, errAt(seg+".triggers", "an action needs a trigger")
		}
		act := OverloadAction{Name: a.GetName()}
		for j, t := range a.GetTriggers() {
			tseg := seg + "." + pbcheck.Idx("triggers", j)
			if !monitors[t.GetName()] {
				return nil, errAt(tseg+".name", "no resource monitor %q", t.GetName())
			}
			tr := OverloadTrigger{Monitor: t.GetName()}
			switch {
			case t.GetThreshold() != nil:
				tr.Threshold = t.GetThreshold().GetValue()
				if tr.Threshold < 0 || tr.Threshold > 1 {
					return nil, errAt(tseg+".threshold.value", "must be within [0, 1], got %v", tr.Threshold)
				}
			case t.GetScaled() != nil:
				tr.Scaled = true
				tr.Scaling, tr.Saturation = t.GetScaled().GetScalingThreshold(), t.GetScaled().GetSaturationThreshold()
				if tr.Scaling < 0 || tr.Saturation > 1 || tr.Scaling >= tr.Saturation {
					return nil, errAt(tseg+".scaled", "want 0 <= scaling_threshold < saturation_threshold <= 1, got %v and %v", tr.Scaling, tr.Saturation)
				}
			default:
				return nil, errAt(tseg, "needs threshold or scaled")
			}
			act.Triggers = append(act.Triggers, tr)
		}
		o.Actions = append(o.Actions, act)
	}
	return o, nil
}

func unpackMonitor(a *anypb.Any, into proto.Message) error {
	if a == nil {
		return fmt.Errorf("missing (want %s)", into.ProtoReflect().Descriptor().FullName())
	}
	if err := a.UnmarshalTo(into); err != nil {
		return fmt.Errorf("want %s: %w", into.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

func init() {
	for k, v := range overloadAllowlist {
		allowlist[k] = v
	}
}

package istio

import (
	"fmt"

	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

func init() { filters.Register(grpcStatsFactory{}) }

type grpcStatsFactory struct{}

func (grpcStatsFactory) Names() []string { return []string{"envoy.filters.http.grpc_stats"} }
func (grpcStatsFactory) TypeURLs() []string {
	return []string{"type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"}
}

// grpcStatsAllowlist: emit_filter_state and stats_for_all_methods only
// choose which statistics exist; individual_method_stats_allowlist and
// replace_dots_in_grpc_service_name too.
var grpcStatsAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.http.grpc_stats.v3.FilterConfig": pbcheck.F("emit_filter_state",
		"stats_for_all_methods", "enable_upstream_stats", "replace_dots_in_grpc_service_name"),
}

// GRPCStats is the grpc_stats filter: with emit_filter_state it marks a
// gRPC stream's message counts wanted (filters.Stream.GRPCMessageCounts),
// which the connection manager counts on the bodies it relays anyway and
// Istio's standard metrics report, as Istio's stats filter reads Envoy's
// GrpcStatsObject. Its per-method counters (cluster.X.grpc.*) are not kept.
// Stateless; safe for concurrent use.
type GRPCStats struct{ emit bool }

// OnRequest implements filters.RequestFilter.
func (f GRPCStats) OnRequest(s *filters.Stream) filters.Status {
	if f.emit && s.GRPC {
		s.GRPCMessageCounts = true
	}
	return filters.Continue
}

// New checks a grpc_stats FilterConfig.
func (grpcStatsFactory) New(_ filters.BuildContext, cfg proto.Message) (GRPCStats, error) {
	if cfg == nil {
		return GRPCStats{}, nil
	}
	pb, ok := cfg.(*grpcstatsv3.FilterConfig)
	if !ok {
		return GRPCStats{}, fmt.Errorf("grpc_stats: config is %T, want FilterConfig", cfg)
	}
	return GRPCStats{emit: pb.GetEmitFilterState()}, grpcStatsAllowlist.Check(pb.ProtoReflect())
}

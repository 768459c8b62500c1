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

// New checks a grpc_stats FilterConfig and returns a filter that does
// nothing: the statistics it would count are telemetry's.
func (grpcStatsFactory) New(_ filters.BuildContext, cfg proto.Message) (filters.NoOp, error) {
	if cfg == nil {
		return filters.NoOp{}, nil
	}
	pb, ok := cfg.(*grpcstatsv3.FilterConfig)
	if !ok {
		return filters.NoOp{}, fmt.Errorf("grpc_stats: config is %T, want FilterConfig", cfg)
	}
	return filters.NoOp{}, grpcStatsAllowlist.Check(pb.ProtoReflect())
}

package extauthz

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// NetworkName and NetworkTypeURL identify the network filter, which istiod
// puts on a waypoint's TCP chains for a CUSTOM policy with a gRPC
// provider: each connection its filter_enabled_metadata selects (the
// network RBAC's shadow decision) is checked once, when it starts, with
// its peers' addresses and identities; a denial or a failed check (unless
// failure_mode_allow) closes it.
const (
	NetworkName    = "envoy.filters.network.ext_authz"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"
)

var networkAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz": pbcheck.F("stat_prefix", "grpc_service",
		"failure_mode_allow", "transport_api_version", "filter_enabled_metadata"),
	"envoy.config.core.v3.GrpcService":                  allowlist["envoy.config.core.v3.GrpcService"],
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":        allowlist["envoy.config.core.v3.GrpcService.EnvoyGrpc"],
	"envoy.config.core.v3.HeaderValue":                  allowlist["envoy.config.core.v3.HeaderValue"],
	"envoy.type.matcher.v3.MetadataMatcher":             allowlist["envoy.type.matcher.v3.MetadataMatcher"],
	"envoy.type.matcher.v3.MetadataMatcher.PathSegment": allowlist["envoy.type.matcher.v3.MetadataMatcher.PathSegment"],
	"envoy.type.matcher.v3.ValueMatcher":                allowlist["envoy.type.matcher.v3.ValueMatcher"],
}

// Network is a decoded envoy.filters.network.ext_authz. Read-only.
type Network struct {
	StatPrefix       string
	svc              grpcService
	failureModeAllow bool
	enabled          *metadataMatcher
	stats            counters
}

// NewNetwork decodes a network ext_authz filter's config, its counters
// (envoy_tcp_ext_authz_*) registered on ctx.Stats; errors name the field
// relative to it.
func NewNetwork(ctx filters.BuildContext, pb *netextauthzv3.ExtAuthz) (*Network, error) {
	if err := networkAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		return nil, pbcheck.ErrAt("transport_api_version", "%v is not supported: V3 only", pb.GetTransportApiVersion())
	}
	if pb.GetGrpcService() == nil {
		return nil, pbcheck.ErrAt("grpc_service", "required")
	}
	n := &Network{StatPrefix: pb.GetStatPrefix(), failureModeAllow: pb.GetFailureModeAllow()}
	var err error
	if n.svc, err = newGRPCService(pb.GetGrpcService()); err != nil {
		return nil, pbcheck.At("grpc_service", err)
	}
	if m := pb.GetFilterEnabledMetadata(); m != nil {
		if n.enabled, err = compileMetadata(m); err != nil {
			return nil, pbcheck.At("filter_enabled_metadata", err)
		}
	}
	if n.stats, err = newCounters(ctx.Stats, "tcp", pb.GetStatPrefix()); err != nil {
		return nil, err
	}
	return n, nil
}

// Allow checks a connection from down through up() (called only for a
// check), unless md (the connection's dynamic metadata) does not select
// it. It returns whether the connection may go on and, when not, Envoy's
// reason.
func (n *Network) Allow(ctx context.Context, up func() filters.Upstream, down *filters.Downstream, md Metadata) (bool, string) {
	if n.enabled != nil && !n.enabled.match(md) {
		n.stats.disabled.Inc()
		return true, ""
	}
	ctx, cancel := context.WithTimeout(ctx, n.svc.timeout)
	defer cancel()
	src, dst := peers(down, down.RemoteAddr)
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: src, Destination: dst}}
	out, err := n.svc.check(ctx, up(), cr)
	switch {
	case err == nil && out.GetStatus().GetCode() == 0:
		n.stats.ok.Inc()
		return true, ""
	case err == nil:
		n.stats.denied.Inc()
		return false, DetailsDenied
	}
	n.stats.error.Inc()
	if n.failureModeAllow {
		n.stats.failureModeAllowed.Inc()
		return true, ""
	}
	return false, fmt.Sprintf("%s: %v", DetailsError, err)
}

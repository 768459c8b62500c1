package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/extauthz"
	"github.com/gowaypoint/waypoint/filters/rbac"
)

// decodeNetworkRBAC decodes f when it is an envoy.filters.network.rbac (by
// its typed_config's type, as Envoy identifies filters); ok is false for
// any other filter. Errors are relative to f.
func decodeNetworkRBAC(b *build, f *listenerv3.Filter) (*rbac.Network, bool, error) {
	return decodeLeadingFilter(b, f, &netrbacv3.RBAC{}, rbac.NewNetwork)
}

// decodeNetworkExtAuthz decodes f when it is an
// envoy.filters.network.ext_authz; ok is false for any other filter.
// Errors are relative to f.
func decodeNetworkExtAuthz(b *build, f *listenerv3.Filter) (*extauthz.Network, bool, error) {
	return decodeLeadingFilter(b, f, &netextauthzv3.ExtAuthz{}, extauthz.NewNetwork)
}

// decodeLeadingFilter decodes f into pb and builds it with newFilter when
// f's typed_config is of pb's type; ok is false for any other filter.
func decodeLeadingFilter[P proto.Message, N any](b *build, f *listenerv3.Filter, pb P, newFilter func(filters.BuildContext, P) (N, error)) (n N, ok bool, err error) {
	if f.GetTypedConfig().MessageName() != nameOf(pb) {
		return n, false, nil
	}
	if err := f.GetTypedConfig().UnmarshalTo(pb); err != nil {
		return n, true, at("typed_config", err)
	}
	if err := validate(pb); err != nil {
		return n, true, at("typed_config", err)
	}
	n, err = newFilter(b.context(f.GetName()), pb)
	return n, true, at("typed_config", err)
}

package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/gowaypoint/waypoint/filters/extauthz"
	"github.com/gowaypoint/waypoint/filters/rbac"
)

// decodeNetworkRBAC decodes f when it is an envoy.filters.network.rbac (by
// its typed_config's type, as Envoy identifies filters); ok is false for
// any other filter. Errors are relative to f.
func decodeNetworkRBAC(b *build, f *listenerv3.Filter) (n *rbac.Network, ok bool, err error) {
	var pb netrbacv3.RBAC
	if f.GetTypedConfig().MessageName() != nameOf(&pb) {
		return nil, false, nil
	}
	if err := f.GetTypedConfig().UnmarshalTo(&pb); err != nil {
		return nil, true, at("typed_config", err)
	}
	if err := validate(&pb); err != nil {
		return nil, true, at("typed_config", err)
	}
	n, err = rbac.NewNetwork(b.context(f.GetName()), &pb)
	return n, true, at("typed_config", err)
}

// decodeNetworkExtAuthz decodes f when it is an
// envoy.filters.network.ext_authz; ok is false for any other filter.
// Errors are relative to f.
func decodeNetworkExtAuthz(b *build, f *listenerv3.Filter) (n *extauthz.Network, ok bool, err error) {
	var pb netextauthzv3.ExtAuthz
	if f.GetTypedConfig().MessageName() != nameOf(&pb) {
		return nil, false, nil
	}
	if err := f.GetTypedConfig().UnmarshalTo(&pb); err != nil {
		return nil, true, at("typed_config", err)
	}
	if err := validate(&pb); err != nil {
		return nil, true, at("typed_config", err)
	}
	n, err = extauthz.NewNetwork(b.context(f.GetName()), &pb)
	return n, true, at("typed_config", err)
}

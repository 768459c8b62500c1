package xds_test

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// Kinds of resource FuzzBuild puts the fuzzed bytes in.
const (
	fuzzListener uint8 = iota
	fuzzCluster
	fuzzEndpoints
	fuzzRoute // a RouteConfiguration inline in the first HCM that has one
	numFuzzKinds
)

// FuzzBuild decodes data as a Listener, Cluster, ClusterLoadAssignment or
// RouteConfiguration (kind % 4) and puts it into the reviews fixture
// (istiod's xDS for a waypoint) in place of the resource at index idx
// (merge: merged into it instead, so that a few fuzzed fields change a
// valid resource), then builds the whole set with BuildResources. Nothing
// may panic; a build either fails with an error that says something or
// gives a snapshot whose listeners match connections, whose config dump
// does not panic, and which closes. The
// seed corpus is every fixture resource in wire format (the fuzzer's
// mutations of them are the proto mutations of valid config) and
// testdata/fuzz/FuzzBuild.
func FuzzBuild(f *testing.F) {
	fix := xdstest.Reviews(f)
	if _, err := xds.BuildResources("seed", fix); err != nil {
		f.Fatalf("the fixture does not build: %v", err)
	}
	routes := fixtureRoutes(f, fix)
	add := func(kind uint8, i int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, kind, uint16(i), false)
	}
	for i, m := range fix.Listeners {
		add(fuzzListener, i, m)
	}
	for i, m := range fix.Clusters {
		add(fuzzCluster, i, m)
	}
	for i, m := range fix.Endpoints {
		add(fuzzEndpoints, i, m)
	}
	for i, m := range routes {
		add(fuzzRoute, i, m)
	}
	f.Add([]byte{0x0a, 0x01, 'x'}, fuzzCluster, uint16(0), true) // a merge renaming a cluster
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, idx uint16, merge bool) {
		r := &xds.Resources{Listeners: fix.Listeners, Clusters: fix.Clusters, Endpoints: fix.Endpoints}
		switch kind % numFuzzKinds {
		case fuzzListener:
			r.Listeners = put(t, data, fix.Listeners, idx, merge)
		case fuzzCluster:
			r.Clusters = put(t, data, fix.Clusters, idx, merge)
		case fuzzEndpoints:
			r.Endpoints = put(t, data, fix.Endpoints, idx, merge)
		case fuzzRoute:
			if rcs := put(t, data, routes, idx, merge); rcs != nil {
				r.Listeners = withRoute(t, fix.Listeners, rcs[int(idx)%len(routes)])
			}
		}
		if r.Listeners == nil && r.Clusters == nil && r.Endpoints == nil {
			return // not a message of that kind
		}
		snap, err := xds.BuildResources("fuzz", r)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error that says nothing")
			}
			return
		}
		for _, l := range snap.Listeners {
			for _, dst := range []string{"10.0.0.1:9080", "[fd00::1]:80", "127.0.0.1:15008", "0.0.0.0:0"} {
				l.Match(xds.MatchInput{Destination: netip.MustParseAddrPort(dst), Source: netip.MustParseAddrPort("10.0.0.2:1234"), AppProtocol: "'h2c'"})
			}
		}
		// ConfigDump may fail on what Build accepted without decoding (a
		// transport_socket_matches entry no endpoint picks, whose Any holds
		// bytes protojson refuses: corpus entry 380ff2150b458bce,
		// docs/hardening.md); it must not panic.
		snap.ConfigDump()
		if err := snap.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}

// put returns a copy of list with the message data decodes to at idx
// (merged into the one there when merge), nil when data is no M.
func put[M proto.Message](t *testing.T, data []byte, list []M, idx uint16, merge bool) []M {
	if len(list) == 0 {
		return nil
	}
	i := int(idx) % len(list)
	m := list[i].ProtoReflect().New().Interface().(M)
	if err := proto.Unmarshal(data, m); err != nil {
		return nil
	}
	if merge {
		base := proto.Clone(list[i]).(M)
		proto.Merge(base, m)
		m = base
	}
	out := append([]M(nil), list...)
	out[i] = m
	return out
}

// fixtureRoutes returns the inline route configurations of the fixture's
// HTTP connection managers.
func fixtureRoutes(tb testing.TB, r *xds.Resources) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageIs(&hcm) && f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRouteConfig() != nil {
					out = append(out, hcm.GetRouteConfig())
				}
			}
		}
	}
	if len(out) == 0 {
		tb.Fatal("no inline route configuration in the fixture")
	}
	return out
}

// withRoute returns listeners with the first HCM that has an inline route
// configuration given rc instead (nil listeners when rc is nil).
func withRoute(t *testing.T, listeners []*listenerv3.Listener, rc *routev3.RouteConfiguration) []*listenerv3.Listener {
	if rc == nil {
		return nil
	}
	out := append([]*listenerv3.Listener(nil), listeners...)
	for i, l := range out {
		for j, fc := range l.GetFilterChains() {
			for k, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if !f.GetTypedConfig().MessageIs(&hcm) || f.GetTypedConfig().UnmarshalTo(&hcm) != nil || hcm.GetRouteConfig() == nil {
					continue
				}
				hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
				a, err := anypb.New(&hcm)
				if err != nil {
					t.Fatal(err)
				}
				nl := proto.Clone(l).(*listenerv3.Listener)
				nl.FilterChains[j].Filters[k].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
				out[i] = nl
				return out
			}
		}
	}
	t.Fatal("no HCM with an inline route configuration")
	return nil
}

// Package xdstest gives tests the xDS istiod generates for a waypoint
// (xds/testdata/istiod, a copy of ../shared/istiod) as resources, and
// helpers to write resource directories for xdsserver.
package xdstest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

// ReviewsDir is the directory of the reviews fixture.
func ReviewsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "istiod", "reviews")
}

// Reviews loads the reviews fixture whole.
func Reviews(tb testing.TB) *xds.Resources {
	tb.Helper()
	r, err := xds.LoadResourceDir(ReviewsDir())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// RBACFilter and HTTPRBACTypeURL name Envoy's RBAC filters, which issue 6
// implements.
const (
	HTTPRBACTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	NetworkRBACTypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// RBACImplemented reports whether the HTTP RBAC filter is registered (issue
// 6 landed in this build).
func RBACImplemented() bool {
	_, err := filters.Lookup("envoy.filters.http.rbac", HTTPRBACTypeURL)
	return err == nil
}

// WithoutIssue6 removes, in place, what istiod sends that is issue 6's
// (RBAC filters, HTTP and network, and HCM tracing) while it is refused, and
// returns r. It removes nothing the build implements.
func WithoutIssue6(tb testing.TB, r *xds.Resources, tracingImplemented bool) *xds.Resources {
	tb.Helper()
	rbac := RBACImplemented()
	for i, l := range r.Listeners {
		l = proto.Clone(l).(*listenerv3.Listener)
		r.Listeners[i] = l
		for _, fc := range l.GetFilterChains() {
			var keep []*listenerv3.Filter
			for _, f := range fc.GetFilters() {
				if !rbac && f.GetTypedConfig().GetTypeUrl() == NetworkRBACTypeURL {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageName() == "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						tb.Fatal(err)
					}
					if !tracingImplemented {
						hcm.Tracing = nil
					}
					var hf []*hcmv3.HttpFilter
					for _, h := range hcm.GetHttpFilters() {
						if rbac || h.GetTypedConfig().GetTypeUrl() != HTTPRBACTypeURL {
							hf = append(hf, h)
						}
					}
					hcm.HttpFilters = hf
					a, err := anypb.New(&hcm)
					if err != nil {
						tb.Fatal(err)
					}
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
				}
				keep = append(keep, f)
			}
			fc.Filters = keep
		}
	}
	return r
}

// WriteDir writes r into dir in the fixture format, replacing the files
// atomically (a rename), so that a server polling dir never reads half a
// file.
func WriteDir(tb testing.TB, dir string, r *xds.Resources) {
	tb.Helper()
	write := func(name string, data []byte, err error) {
		if err != nil {
			tb.Fatal(err)
		}
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := xds.MarshalResourceList(r.Listeners)
	write(xds.ListenersFile, b, err)
	b, err = xds.MarshalResourceList(r.Clusters)
	write(xds.ClustersFile, b, err)
	b, err = xds.MarshalResourceList(r.Endpoints)
	write(xds.EndpointsFile, b, err)
	if len(r.Routes) > 0 {
		b, err = xds.MarshalResourceList(r.Routes)
		write(xds.RoutesFile, b, err)
	}
}

// Contains reports whether s contains every part.
func Contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

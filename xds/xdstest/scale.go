package xdstest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/xds"
)

// The template: the live dump's Service reviews (its host, VIP) and the
// reviews fixture's endpoint set the one endpoint is taken from.
const (
	scaleHost       = "reviews.ns2.svc.cluster.local"
	scaleVIP        = "10.106.255.198"
	scaleTemplateEP = "inbound-vip|9080|http|reviews.mesh.local" // in the reviews fixture's EDS
)

// scaleParts are the parts of the live config, once per process.
type scaleParts struct {
	listeners []*listenerv3.Listener // connect_terminate, main_internal (without reviews), connect_originate
	clusters  []*clusterv3.Cluster   // the shared ones: main_internal, encap, connect_originate
	cluster   string                 // protojson of reviews' inbound-vip cluster
	chain     string                 // of its filter chain
	vipMatch  string                 // of its VIP's range matcher
	cla       string                 // of a ClusterLoadAssignment with one endpoint
}

var scaleOnce = sync.OnceValues(loadScaleParts)

func loadScaleParts() (*scaleParts, error) {
	b, err := os.ReadFile(filepath.Join(testdataDir(), "live", "config-dump.json"))
	if err != nil {
		return nil, err
	}
	var dump adminv3.ConfigDump
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &dump); err != nil {
		return nil, err
	}
	t := &scaleParts{}
	js := func(m proto.Message) string { return protojson.Format(m) }
	for _, a := range dump.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, err
		}
		switch d := m.(type) {
		case *adminv3.ListenersConfigDump:
			for _, dl := range d.GetDynamicListeners() {
				var l listenerv3.Listener
				if err := dl.GetActiveState().GetListener().UnmarshalTo(&l); err != nil {
					return nil, err
				}
				if l.GetName() == "main_internal" {
					var keep []*listenerv3.FilterChain
					for _, fc := range l.GetFilterChains() {
						if strings.Contains(fc.GetName(), scaleHost) {
							t.chain = js(fc)
						} else {
							keep = append(keep, fc)
						}
					}
					l.FilterChains = keep
					ip := &xdsmatcherv3.IPMatcher{}
					tc := l.GetFilterChainMatcher().GetMatcherTree().GetCustomMatch().GetTypedConfig()
					if err := tc.UnmarshalTo(ip); err != nil {
						return nil, err
					}
					if len(ip.GetRangeMatchers()) != 1 {
						return nil, fmt.Errorf("main_internal's matcher has %d range matchers, want reviews' only", len(ip.GetRangeMatchers()))
					}
					t.vipMatch = js(ip.GetRangeMatchers()[0])
				}
				t.listeners = append(t.listeners, &l)
			}
		case *adminv3.ClustersConfigDump:
			for _, dc := range d.GetDynamicActiveClusters() {
				var c clusterv3.Cluster
				if err := dc.GetCluster().UnmarshalTo(&c); err != nil {
					return nil, err
				}
				if strings.Contains(c.GetName(), scaleHost) {
					t.cluster = js(&c)
					continue
				}
				t.clusters = append(t.clusters, &c)
			}
		}
	}
	r, err := xds.LoadResourceDir(ReviewsDir())
	if err != nil {
		return nil, err
	}
	for _, cla := range r.Endpoints {
		if cla.GetClusterName() == scaleTemplateEP {
			one := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
			one.Endpoints[0].LbEndpoints = one.Endpoints[0].LbEndpoints[:1]
			one.Endpoints[0].LoadBalancingWeight = nil
			one.ClusterName = "inbound-vip|9080|http|" + scaleHost
			s := js(one)
			// The fixture's pod address and workload, in the live dump's names.
			s = strings.ReplaceAll(s, "127.10.0.11", "10.244.0.11")
			s = strings.ReplaceAll(s, "reviews-v1;default;reviews;v1;Kubernetes", "reviews-v1;ns2;reviews;v1;Kubernetes")
			t.cla = s
		}
	}
	if t.chain == "" || t.cluster == "" || t.cla == "" || len(t.listeners) != 3 || len(t.clusters) != 3 {
		return nil, fmt.Errorf("live dump: chain %t, cluster %t, endpoints %t, %d listeners and %d other clusters (want 3 and 3)",
			t.chain != "", t.cluster != "", t.cla != "", len(t.listeners), len(t.clusters))
	}
	return t, nil
}

// ScaleService names the i-th Service (from 0) of Scale: its host
// (svcNNNNN.ns2.svc.cluster.local), name, VIP (10.96.0.0/14) and pod
// address (10.200.0.0/14).
func ScaleService(i int) (host, name string, vip, pod netip.Addr) {
	name = fmt.Sprintf("svc%05d", i)
	vip = netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
	pod = netip.AddrFrom4([4]byte{10, 200 + byte(i>>16), byte(i >> 8), byte(i)})
	return name + ".ns2.svc.cluster.local", name, vip, pod
}

// Scale is the config a namespace waypoint gets for n Services (up to
// 2^18), each with one HTTP port and one workload, as a live istiod
// writes it: the listeners and clusters of xds/testdata/istiod/live/config-dump.json (a Gateway
// waypoint and a Service reviews on 9080 in ns2), with reviews' parts
// repeated once per Service under its own name and VIP:
//
//   - its inbound-vip|9080|http|HOST cluster (EDS over ADS);
//   - its ClusterLoadAssignment: one endpoint, the internal address of
//     connect_originate with the pod's ip:port in original_dst metadata,
//     shaped as the reviews fixture's (ReviewsDir);
//   - its filter chain in main_internal (an HTTP connection manager with
//     the route configuration inline, as istiod writes it for HTTP ports);
//   - its VIP's entry in main_internal's filter_chain_matcher.
//
// Each part is the template's protojson with the Service's host, name,
// VIP and pod address put in place of reviews', so it looks exactly as
// istiod's does.
//
// Each resource is an Any as it comes in a discovery response, in the
// order istiod pushes them (clusters, endpoints, listeners); ScaleService
// names the Services. Each call makes new messages.
func Scale(tb testing.TB, n int) []*anypb.Any {
	tb.Helper()
	out, err := ScaleConfig(n)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// ScaleConfig is Scale for a program: an error where Scale fails its test.
func ScaleConfig(n int) (out []*anypb.Any, err error) {
	t, err := scaleOnce()
	if err != nil {
		return nil, err
	}
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	put := func(m proto.Message) {
		a, e := anypb.New(m)
		if e != nil {
			fail(e)
			return
		}
		out = append(out, a)
	}
	parse := func(tmpl string, r *strings.Replacer, m proto.Message) {
		if e := protojson.Unmarshal([]byte(r.Replace(tmpl)), m); e != nil {
			fail(e)
		}
	}
	for _, c := range t.clusters {
		put(c)
	}
	var (
		chains []*listenerv3.FilterChain
		ranges []*xdsmatcherv3.IPMatcher_IPRangeMatcher
		clas   []*endpointv3.ClusterLoadAssignment
	)
	for i := range n {
		host, name, vip, pod := ScaleService(i)
		r := strings.NewReplacer(scaleHost, host, `"reviews"`, `"`+name+`"`, "reviews-v1;", name+"-v1;",
			scaleVIP, vip.String(), "10.244.0.11", pod.String())
		var c clusterv3.Cluster
		parse(t.cluster, r, &c)
		put(&c)
		cla := &endpointv3.ClusterLoadAssignment{}
		parse(t.cla, r, cla)
		clas = append(clas, cla)
		fc := &listenerv3.FilterChain{}
		parse(t.chain, r, fc)
		chains = append(chains, fc)
		rm := &xdsmatcherv3.IPMatcher_IPRangeMatcher{}
		parse(t.vipMatch, r, rm)
		ranges = append(ranges, rm)
	}
	for _, cla := range clas {
		put(cla)
	}
	for _, l := range t.listeners {
		if l.GetName() == "main_internal" {
			l = proto.Clone(l).(*listenerv3.Listener)
			l.FilterChains = append(chains, l.FilterChains...)
			tc := l.GetFilterChainMatcher().GetMatcherTree().GetCustomMatch()
			a, e := anypb.New(&xdsmatcherv3.IPMatcher{RangeMatchers: ranges})
			if e != nil {
				return nil, e
			}
			tc.TypedConfig = a
		}
		put(l)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScaleResources is Scale decoded, as the xDS client decodes a response.
func ScaleResources(tb testing.TB, n int) *xds.Resources {
	tb.Helper()
	return Decode(tb, Scale(tb, n))
}

// Decode decodes resources as the xDS client does a response's
// (Any.UnmarshalNew) into Resources.
func Decode(tb testing.TB, config []*anypb.Any) *xds.Resources {
	r := &xds.Resources{}
	for _, a := range config {
		m, err := a.UnmarshalNew()
		if err != nil {
			tb.Fatal(err)
		}
		if err := r.Add(m); err != nil {
			tb.Fatal(err)
		}
	}
	return r
}

// Wire sorts resources into a Wire by their type (packed or not).
func Wire(tb testing.TB, config []*anypb.Any) *xds.Wire {
	tb.Helper()
	w := &xds.Wire{}
	for _, a := range config {
		if err := w.Add(a); err != nil {
			tb.Fatal(err)
		}
	}
	return w
}

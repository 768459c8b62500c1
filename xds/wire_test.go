package xds

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// wireOf is r as it comes over xDS.
func wireOf(t *testing.T, r *Resources) *Wire {
	t.Helper()
	w := &Wire{}
	add := func(dst *[]*anypb.Any, m proto.Message) {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		*dst = append(*dst, a)
	}
	for _, m := range r.Listeners {
		add(&w.Listeners, m)
	}
	for _, m := range r.Clusters {
		add(&w.Clusters, m)
	}
	for _, m := range r.Endpoints {
		add(&w.Endpoints, m)
	}
	for _, m := range r.Routes {
		add(&w.Routes, m)
	}
	for _, m := range r.Secrets {
		add(&w.Secrets, m)
	}
	return w
}

// A snapshot built from the wire is the one built from the decoded
// resources, less the messages: no Raw, no Metadata, and the istio
// metadata the data path reads answered the same; its config dump is the
// same.
func TestBuildWire(t *testing.T) {
	r := mustLoad(t)
	want, err := BuildResources("1", r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := BuildOptions{}.BuildWire("1", wireOf(t, mustLoad(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	defer got.Close()
	opts := cmp.Options{cmpOpts, cmpopts.IgnoreFields(Cluster{}, "Metadata"), cmpopts.IgnoreFields(Endpoint{}, "Metadata")}
	if diff := cmp.Diff(want.Clusters, got.Clusters, opts); diff != "" {
		t.Errorf("clusters (-from messages +from wire):\n%s", diff)
	}
	services, workloads := 0, 0
	for name, c := range got.Clusters {
		if c.Raw != nil || c.Metadata != nil {
			t.Errorf("cluster %s keeps its message (Raw %v, Metadata %v)", name, c.Raw != nil, c.Metadata != nil)
		}
		if diff := cmp.Diff(want.Clusters[name].IstioServices(), c.IstioServices()); diff != "" {
			t.Errorf("cluster %s istio services (-from messages +from wire):\n%s", name, diff)
		}
		services += len(c.IstioServices())
		for i := range c.Endpoints {
			e, we := &c.Endpoints[i], &want.Clusters[name].Endpoints[i]
			w1, ok1 := we.IstioWorkload()
			w2, ok2 := e.IstioWorkload()
			if e.Metadata != nil || w1 != w2 || ok1 != ok2 {
				t.Errorf("cluster %s endpoint %d: metadata kept %v, workload %+v %v, want %+v %v", name, i, e.Metadata != nil, w2, ok2, w1, ok1)
			}
			if ok2 {
				workloads++
			}
		}
	}
	if services == 0 || workloads == 0 {
		t.Fatalf("the fixture has %d istio services and %d workloads: nothing compared", services, workloads)
	}
	for i, l := range got.Listeners {
		if l.Raw != nil || l.Name != want.Listeners[i].Name || l.TrafficDirection != want.Listeners[i].TrafficDirection {
			t.Errorf("listener %s: Raw kept %v, direction %v (want %s, %v)", l.Name, l.Raw != nil, l.TrafficDirection, want.Listeners[i].Name, want.Listeners[i].TrafficDirection)
		}
	}
	vers := map[string]string{ListenerTypeURL: "1", ClusterTypeURL: "1", EndpointsTypeURL: "1"}
	want.SetSourceVersions(vers)
	got.SetSourceVersions(vers)
	wd, err := want.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	gd, err := got.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	if string(wd) != string(gd) {
		t.Errorf("config dumps differ:\n%s", cmp.Diff(string(wd), string(gd)))
	}

	// An Any of another type than its list's is refused.
	w := wireOf(t, mustLoad(t))
	w.Clusters[0] = w.Listeners[0]
	if _, err := (BuildOptions{}).BuildWire("1", w); err == nil {
		t.Error("a listener among the clusters: no error")
	}
}

// A large resource packs small and decodes as it came; a small one is not
// packed; a packed one that does not unpack is an error, not a panic.
func TestPack(t *testing.T) {
	r := mustLoad(t)
	l := proto.Clone(r.Listeners[1]).(*listenerv3.Listener) // main_internal
	for len(l.FilterChains) < 200 {
		l.FilterChains = append(l.FilterChains, l.FilterChains[:len(l.FilterChains):len(l.FilterChains)]...)
	}
	big, err := anypb.New(l)
	if err != nil {
		t.Fatal(err)
	}
	small, err := anypb.New(r.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	if Pack(small) != small {
		t.Error("a small resource was packed")
	}
	packed := Pack(big)
	if len(big.GetValue()) < PackMin || len(packed.GetValue()) > len(big.GetValue())/10 {
		t.Fatalf("%d bytes packed into %d", len(big.GetValue()), len(packed.GetValue()))
	}
	got, err := (&Wire{Listeners: []*anypb.Any{packed, small}}).Decode()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Listeners) != 2 || !proto.Equal(got.Listeners[0], l) || !proto.Equal(got.Listeners[1], r.Listeners[0]) {
		t.Error("the packed listener does not decode as it came")
	}
	bad := &anypb.Any{TypeUrl: packed.GetTypeUrl(), Value: packed.GetValue()[:len(packed.GetValue())/2]}
	if _, err := (&Wire{Listeners: []*anypb.Any{bad}}).Decode(); err == nil {
		t.Error("a truncated packed resource decodes")
	}
	if _, err := (&Wire{Clusters: []*anypb.Any{packed}}).Decode(); err == nil {
		t.Error("a packed listener among clusters decodes")
	}
}

package controller

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func testGateway() *gwv1.Gateway {
	gw := &gwv1.Gateway{}
	gw.Name, gw.Namespace, gw.UID, gw.Generation = "wp", "ns", "uid-1", 3
	gw.Spec.GatewayClassName = "istio-mesh"
	gw.Spec.Listeners = []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}}
	return gw
}

func condition(conds []metav1.Condition, typ string) metav1.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func addrs(st gwv1.GatewayStatus) []string {
	var out []string
	for _, a := range st.Addresses {
		out = append(out, string(*a.Type)+"="+a.Value)
	}
	return out
}

// TestGatewayStatus: Programmed and the addresses follow the Service's
// cluster IP and the Deployment's ready pods, as istiod's do for its
// waypoints; a problem keeps them off.
func TestGatewayStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	ready := observed{service: "wp", deployment: "wp", clusterIPs: []string{"10.96.0.20"}, readyReplicas: 1}
	withAddresses := func(gw *gwv1.Gateway) {
		ip, host := gwv1.IPAddressType, gwv1.HostnameAddressType
		gw.Status.Addresses = []gwv1.GatewayStatusAddress{{Type: &ip, Value: "10.96.0.20"}, {Type: &host, Value: "wp.ns.svc.cluster.local"}}
	}
	both := []string{"IPAddress=10.96.0.20", "Hostname=wp.ns.svc.cluster.local"}
	cases := []struct {
		name           string
		gw             func(*gwv1.Gateway)
		ob             observed
		accepted       metav1.ConditionStatus
		programmed     string // status/reason
		addresses      []string
		listenerAccept metav1.ConditionStatus
	}{
		{name: "programmed", ob: ready, accepted: "True", programmed: "True/Programmed", addresses: both, listenerAccept: "True"},
		{name: "dual stack, IPs sorted then the hostname",
			ob:       observed{service: "wp", deployment: "wp", clusterIPs: []string{"fd00::20", "10.96.0.20"}, readyReplicas: 2},
			accepted: "True", programmed: "True/Programmed", listenerAccept: "True",
			addresses: []string{"IPAddress=10.96.0.20", "IPAddress=fd00::20", "Hostname=wp.ns.svc.cluster.local"}},
		{name: "no cluster IP yet", ob: observed{service: "wp", deployment: "wp", readyReplicas: 1},
			accepted: "True", programmed: "False/Pending", listenerAccept: "True"},
		{name: "no ready pod yet", ob: observed{service: "wp", deployment: "wp", clusterIPs: []string{"10.96.0.20"}},
			accepted: "True", programmed: "False/AddressNotAssigned", listenerAccept: "True"},
		{name: "no ready pod any more: the addresses stay", gw: withAddresses,
			ob:       observed{service: "wp", deployment: "wp", clusterIPs: []string{"10.96.0.20"}},
			accepted: "True", programmed: "False/AddressNotAssigned", addresses: both, listenerAccept: "True"},
		{name: "a conflict", ob: observed{service: "wp", deployment: "wp", clusterIPs: []string{"10.96.0.20"}, readyReplicas: 1,
			notProgrammed: &problem{reason: "Invalid", message: "Service ns/wp exists and is not managed by waypoint-controller"}},
			accepted: "True", programmed: "False/Invalid", listenerAccept: "True"},
		{name: "not accepted", ob: observed{service: "wp", deployment: "wp",
			notAccepted: &problem{reason: "InvalidParameters", message: "parametersRef: ConfigMap ns/p not found"}},
			accepted: "False", programmed: "False/Invalid", listenerAccept: "True"},
		{name: "not accepted keeps the addresses it had", gw: withAddresses, ob: observed{service: "wp", deployment: "wp",
			notAccepted: &problem{reason: "InvalidParameters", message: "x"}},
			accepted: "False", programmed: "False/Invalid", addresses: both, listenerAccept: "True"},
		{name: "a listener other than 15008/HBONE", gw: func(gw *gwv1.Gateway) { gw.Spec.Listeners[0].Port = 8080 },
			ob: ready, accepted: "True", programmed: "True/Programmed", addresses: both, listenerAccept: "False"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := testGateway()
			if tc.gw != nil {
				tc.gw(gw)
			}
			st := gatewayStatus(gw, tc.ob, "cluster.local", t0)
			if c := condition(st.Conditions, "Accepted"); c.Status != tc.accepted || c.ObservedGeneration != 3 {
				t.Errorf("Accepted %+v, want %s", c, tc.accepted)
			}
			if c := condition(st.Conditions, "Programmed"); string(c.Status)+"/"+c.Reason != tc.programmed {
				t.Errorf("Programmed %+v, want %s", c, tc.programmed)
			}
			if d := cmp.Diff(tc.addresses, addrs(st)); d != "" {
				t.Errorf("addresses (-want +got):\n%s", d)
			}
			if len(st.Listeners) != 1 || st.Listeners[0].Name != "mesh" || st.Listeners[0].SupportedKinds == nil {
				t.Fatalf("listeners %+v", st.Listeners)
			}
			if c := condition(st.Listeners[0].Conditions, "Accepted"); c.Status != tc.listenerAccept {
				t.Errorf("listener Accepted %+v, want %s", c, tc.listenerAccept)
			}
			for _, typ := range []string{"Programmed", "ResolvedRefs", "Conflicted"} {
				if c := condition(st.Listeners[0].Conditions, typ); c.Status == "" {
					t.Errorf("listener has no %s condition", typ)
				}
			}
		})
	}
}

// TestStatusStable: a second computation over the status the first wrote
// is the same, timestamps included (so a reconcile with nothing new writes
// nothing); a changed status gets the new time.
func TestStatusStable(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	gw := testGateway()
	ob := observed{service: "wp", deployment: "wp", clusterIPs: []string{"10.96.0.20"}}
	gw.Status = gatewayStatus(gw, ob, "cluster.local", t0)
	if d := cmp.Diff(gw.Status, gatewayStatus(gw, ob, "cluster.local", t1)); d != "" {
		t.Errorf("recomputed status differs:\n%s", d)
	}
	ob.readyReplicas = 1
	st := gatewayStatus(gw, ob, "cluster.local", t1)
	if c := condition(st.Conditions, "Programmed"); c.Status != "True" || !c.LastTransitionTime.Equal(&t1) {
		t.Errorf("Programmed %+v: want True since t1", c)
	}
	if c := condition(st.Conditions, "Accepted"); !c.LastTransitionTime.Equal(&t0) {
		t.Errorf("Accepted %+v: want its time t0 kept", c)
	}

	gc := &gwv1.GatewayClass{}
	gc.Generation = 1
	gc.Status = classStatus(gc, t0)
	if d := cmp.Diff(gc.Status, classStatus(gc, t1)); d != "" {
		t.Errorf("recomputed class status differs:\n%s", d)
	}
	if c := condition(gc.Status.Conditions, "Accepted"); c.Status != "True" || c.Reason != "Accepted" {
		t.Errorf("class Accepted %+v", c)
	}
	if len(classDescription) > 64 {
		t.Errorf("classDescription has %d bytes: the CRD allows 64", len(classDescription))
	}
}

// TestMayApply: the controller applies over its own objects and, for the
// Gateway that owns them, istiod's; nothing else.
func TestMayApply(t *testing.T) {
	gw := testGateway()
	yes := true
	obj := func(managed string, owner string, controller bool) *metav1.ObjectMeta {
		m := &metav1.ObjectMeta{Name: "wp", Namespace: "ns"}
		if managed != "" {
			m.Labels = map[string]string{"gateway.istio.io/managed": managed}
		}
		if owner != "" {
			ref := metav1.OwnerReference{Kind: "Gateway", Name: "wp", UID: types.UID("uid-" + owner)}
			if controller {
				ref.Controller = &yes
			}
			m.OwnerReferences = []metav1.OwnerReference{ref}
		}
		return m
	}
	ourValue := "waypoint.gowaypoint.io-controller"
	cases := []struct {
		name     string
		existing *metav1.ObjectMeta
		may      bool
		ours     bool
	}{
		{"absent", nil, true, false},
		{"ours, owned", obj(ourValue, "1", true), true, true},
		{"ours, no owner", obj(ourValue, "", false), true, false},
		{"unlabelled", obj("", "1", true), false, false},
		{"istiod's, owned by this Gateway without the controller flag", obj("istio.io-mesh-controller", "1", false), true, false},
		{"istiod's, another Gateway's", obj("istio.io-mesh-controller", "2", false), false, false},
		{"ours, another Gateway's", obj(ourValue, "2", true), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o metav1.Object
			if tc.existing != nil {
				o = tc.existing
			}
			if got := mayApply(o, gw, ourValue); got != tc.may {
				t.Errorf("mayApply %v, want %v", got, tc.may)
			}
			if tc.existing != nil {
				if got := ours(tc.existing, gw, ourValue); got != tc.ours {
					t.Errorf("ours %v, want %v", got, tc.ours)
				}
			}
		})
	}
}

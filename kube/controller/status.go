package controller

import (
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// observed is what one reconcile found out about a Gateway, from which
// gatewayStatus computes its status.
type observed struct {
	// notAccepted, when set, is why the Gateway is not Accepted (a Gateway
	// API reason and a message); nothing is deployed for it.
	notAccepted *problem
	// notProgrammed, when set, is why the objects could not all be applied
	// (e.g. one exists and is not ours).
	notProgrammed *problem
	// service is the name of the Gateway's Service, clusterIPs its cluster
	// IPs (none while it does not exist or has none).
	service    string
	clusterIPs []string
	// deployment is the name of the Gateway's Deployment, readyReplicas its
	// status.readyReplicas.
	deployment    string
	readyReplicas int32
}

// problem is a condition's reason and message.
type problem struct {
	reason  string
	message string
}

// Condition reasons of our own (the rest are the Gateway API's).
const (
	reasonListenerUnexpected = gwv1.ListenerReasonUnsupportedProtocol
)

// gatewayStatus is the status the controller writes for gw: conditions
// Accepted and Programmed, one status per listener, and the addresses.
//
// Programmed, and the addresses, follow istiod's rule for its waypoints:
// they are reported once the Gateway's Service has a cluster IP and its
// Deployment at least one ready pod (istiod waits for an endpoint on the
// listener's port), and an address once reported stays while the Service
// has it, even when no pod is ready (istiod never removes one). The
// addresses are the Service's cluster IPs (IPAddress) and its hostname
// <service>.<namespace>.svc.<domain> (Hostname), as istiod reports both for
// a waypoint class.
//
// Each condition keeps the lastTransitionTime of gw's current one when its
// status is unchanged, so that a reconcile with nothing new writes nothing;
// now stamps the others.
func gatewayStatus(gw *gwv1.Gateway, ob observed, clusterDomain string, now metav1.Time) gwv1.GatewayStatus {
	old := gw.Status
	gen := gw.Generation
	cond := func(typ string, ok bool, reason, message string) metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: gen}
	}
	hostname := ob.service + "." + gw.Namespace + ".svc." + clusterDomain
	var accepted, programmed metav1.Condition
	var addresses []gwv1.GatewayStatusAddress
	switch {
	case ob.notAccepted != nil:
		accepted = cond(string(gwv1.GatewayConditionAccepted), false, ob.notAccepted.reason, ob.notAccepted.message)
		programmed = cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), "Not accepted: "+ob.notAccepted.message)
	default:
		accepted = cond(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "Resource accepted")
		switch {
		case ob.notProgrammed != nil:
			programmed = cond(string(gwv1.GatewayConditionProgrammed), false, ob.notProgrammed.reason, ob.notProgrammed.message)
		case len(ob.clusterIPs) == 0:
			programmed = cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonPending),
				fmt.Sprintf("Waiting for Service %s/%s to have a cluster IP", gw.Namespace, ob.service))
		case ob.readyReplicas == 0:
			programmed = cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotAssigned),
				fmt.Sprintf("Waiting for a ready pod of Deployment %s/%s", gw.Namespace, ob.deployment))
		default:
			programmed = cond(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed),
				fmt.Sprintf("Resource programmed, assigned to service(s) %s:15008", hostname))
		}
		if len(ob.clusterIPs) > 0 && (programmed.Status == metav1.ConditionTrue || len(old.Addresses) > 0) {
			addresses = serviceAddresses(ob.clusterIPs, hostname)
		}
	}
	if addresses == nil && len(old.Addresses) > 0 {
		addresses = old.Addresses // never removed once reported
	}
	st := gwv1.GatewayStatus{
		Addresses:  addresses,
		Conditions: mergeConditions(old.Conditions, now, accepted, programmed),
	}
	for _, l := range gw.Spec.Listeners {
		st.Listeners = append(st.Listeners, listenerStatus(gw, l, old.Listeners, accepted.Status == metav1.ConditionTrue, now))
	}
	return st
}

// serviceAddresses are the cluster IPs, sorted, then the hostname.
func serviceAddresses(ips []string, hostname string) []gwv1.GatewayStatusAddress {
	ipType, hostType := gwv1.IPAddressType, gwv1.HostnameAddressType
	sorted := slices.Clone(ips)
	slices.Sort(sorted)
	var out []gwv1.GatewayStatusAddress
	for _, ip := range sorted {
		if _, err := netip.ParseAddr(ip); err != nil {
			continue // "None" of a headless Service
		}
		out = append(out, gwv1.GatewayStatusAddress{Type: &ipType, Value: ip})
	}
	if len(out) == 0 {
		return nil
	}
	return append(out, gwv1.GatewayStatusAddress{Type: &hostType, Value: hostname})
}

// listenerStatus is a listener's status: Accepted unless it is not the
// waypoint's 15008/HBONE listener (istiod's message), Programmed when
// accepted, ResolvedRefs, not Conflicted, no route kinds (istiod lists none
// for HBONE) and no attached routes (the controller attaches none).
func listenerStatus(gw *gwv1.Gateway, l gwv1.Listener, old []gwv1.ListenerStatus, gatewayAccepted bool, now metav1.Time) gwv1.ListenerStatus {
	gen := gw.Generation
	c := func(typ gwv1.ListenerConditionType, status metav1.ConditionStatus, reason gwv1.ListenerConditionReason, msg string) metav1.Condition {
		return metav1.Condition{Type: string(typ), Status: status, Reason: string(reason), Message: msg, ObservedGeneration: gen}
	}
	accepted := c(gwv1.ListenerConditionAccepted, metav1.ConditionTrue, gwv1.ListenerReasonAccepted, "No errors found")
	programmed := c(gwv1.ListenerConditionProgrammed, metav1.ConditionTrue, gwv1.ListenerReasonProgrammed, "No errors found")
	switch {
	case l.Port != 15008 || l.Protocol != "HBONE":
		msg := `Expected a single listener on port 15008 with protocol "HBONE"`
		accepted = c(gwv1.ListenerConditionAccepted, metav1.ConditionFalse, reasonListenerUnexpected, msg)
		programmed = c(gwv1.ListenerConditionProgrammed, metav1.ConditionFalse, gwv1.ListenerReasonInvalid, msg)
	case !gatewayAccepted:
		programmed = c(gwv1.ListenerConditionProgrammed, metav1.ConditionFalse, gwv1.ListenerReasonInvalid, "The Gateway is not accepted")
	}
	var prev []metav1.Condition
	for _, o := range old {
		if o.Name == l.Name {
			prev = o.Conditions
		}
	}
	return gwv1.ListenerStatus{
		Name:           l.Name,
		SupportedKinds: []gwv1.RouteGroupKind{},
		AttachedRoutes: 0,
		Conditions: mergeConditions(prev, now, accepted, programmed,
			c(gwv1.ListenerConditionResolvedRefs, metav1.ConditionTrue, gwv1.ListenerReasonResolvedRefs, "No errors found"),
			c(gwv1.ListenerConditionConflicted, metav1.ConditionFalse, gwv1.ListenerReasonNoConflicts, "No errors found")),
	}
}

// classStatus is the GatewayClass's status: Accepted.
func classStatus(gc *gwv1.GatewayClass, now metav1.Time) gwv1.GatewayClassStatus {
	return gwv1.GatewayClassStatus{Conditions: mergeConditions(gc.Status.Conditions, now, metav1.Condition{
		Type:               string(gwv1.GatewayClassConditionStatusAccepted),
		Status:             metav1.ConditionTrue,
		Reason:             string(gwv1.GatewayClassReasonAccepted),
		Message:            "Handled by " + FieldManager,
		ObservedGeneration: gc.Generation,
	})}
}

// mergeConditions are conds, each with the lastTransitionTime of the
// condition of its type in old when the status is the same, else now.
func mergeConditions(old []metav1.Condition, now metav1.Time, conds ...metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(conds))
	for _, c := range conds {
		c.LastTransitionTime = now
		for _, o := range old {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}

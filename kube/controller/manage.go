package controller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/gowaypoint/waypoint/kube/render"
)

// mayApply reports whether the controller may apply its rendering of an
// object of gw over existing, the object of that kind and name now in the
// cluster (nil when there is none). It may when there is none; else only
// when it carries the gateway.istio.io/managed label (istiod's rule) and no
// other object is its controller owner: with the controller's own value,
// or with another one (istiod's: the Gateway was of class istio-waypoint
// before) when gw owns it. An object another Gateway controls is left to
// that Gateway even when a name override makes the names collide.
func mayApply(existing metav1.Object, gw *gwv1.Gateway, managedValue string) bool {
	if existing == nil {
		return true
	}
	v, labelled := existing.GetLabels()[render.LabelManaged]
	if !labelled {
		return false
	}
	if ref := metav1.GetControllerOfNoCopy(existing); ref != nil && (ref.Kind != "Gateway" || ref.UID != gw.UID) {
		return false
	}
	if v == managedValue {
		return true
	}
	return ownedBy(existing, gw)
}

// ownedBy reports whether gw is o's controller owner.
func ownedBy(o metav1.Object, gw *gwv1.Gateway) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil {
		// istiod's owner references have no controller flag.
		for i := range o.GetOwnerReferences() {
			r := &o.GetOwnerReferences()[i]
			if r.Kind == "Gateway" && r.UID == gw.UID {
				return true
			}
		}
		return false
	}
	return ref.Kind == "Gateway" && ref.UID == gw.UID
}

// ours reports whether o is an object the controller made for gw: its
// managed label and gw its controller owner. Only such objects are
// deleted when no longer rendered.
func ours(o metav1.Object, gw *gwv1.Gateway, managedValue string) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	return o.GetLabels()[render.LabelManaged] == managedValue && ref != nil && ref.Kind == "Gateway" && ref.UID == gw.UID
}

package upstream

import (
	"net/netip"

	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// DestinationLabels finds the destination labels of a request to an
// endpoint of a cluster in snap: the endpoint's istio workload (name,
// namespace, canonical service and revision, cluster), the cluster's first
// istio service, and the endpoint's expected identity as principal. What
// is not there stays empty (the metrics report it as "unknown").
func DestinationLabels(snap *xds.Snapshot, cluster string, host netip.AddrPort) metrics.Destination {
	var out metrics.Destination
	cl := snap.Cluster(cluster)
	if cl == nil {
		return out
	}
	if svcs := cl.IstioServices(); len(svcs) > 0 {
		out.Service = metrics.Service{Host: svcs[0].Host, Name: svcs[0].Name, Namespace: svcs[0].Namespace}
	}
	ep := cl.EndpointAt(host)
	if ep == nil {
		return out
	}
	if w, ok := ep.IstioWorkload(); ok {
		out.Peer = metrics.Peer{Workload: w.Name, Namespace: w.Namespace, App: w.CanonicalService, Version: w.CanonicalRevision,
			CanonicalService: w.CanonicalService, CanonicalRevision: w.CanonicalRevision, Cluster: w.Cluster}
	}
	if !ep.Identity.IsZero() {
		out.Peer.Principal = ep.Identity.String()
		if out.Peer.Namespace == "" {
			out.Peer.Namespace = ep.Identity.Namespace
		}
	}
	return out
}

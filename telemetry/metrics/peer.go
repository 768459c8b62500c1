package metrics

import (
	"strings"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// Unknown is the value of a label nothing fills, as Istio reports it.
const Unknown = "unknown"

// Peer is one side of a request as Istio's labels describe it.
type Peer struct {
	Workload, Namespace, Principal, App, Version string
	CanonicalService, CanonicalRevision, Cluster string
}

// Service is the destination service (destination_service,
// destination_service_name, destination_service_namespace).
type Service struct {
	Host, Name, Namespace string
}

// SourcePeer describes the downstream from its SPIFFE URI (principal,
// namespace) and the W3C baggage ztunnel sends on the CONNECT:
// k8s.cluster.name, k8s.namespace.name, k8s.<kind>.name (the workload:
// deployment, statefulset, pod...), service.name and service.version (the
// canonical service and revision), app.name and app.version (app and
// version, defaulting to the canonical ones).
func SourcePeer(peerURI, baggage string) Peer {
	var p Peer
	if peerURI != "" {
		p.Principal = peerURI
		if id, err := spiffe.Parse(peerURI); err == nil {
			p.Namespace = id.Namespace
		}
	}
	for _, kv := range strings.Split(baggage, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		if i := strings.IndexByte(v, ';'); i >= 0 { // baggage properties
			v = v[:i]
		}
		v = strings.TrimSpace(v)
		switch {
		case k == "k8s.cluster.name":
			p.Cluster = v
		case k == "k8s.namespace.name":
			p.Namespace = v
		case k == "service.name":
			p.CanonicalService = v
		case k == "service.version":
			p.CanonicalRevision = v
		case k == "app.name":
			p.App = v
		case k == "app.version":
			p.Version = v
		case strings.HasPrefix(k, "k8s.") && strings.HasSuffix(k, ".name"):
			p.Workload = v
		}
	}
	if p.App == "" {
		p.App = p.CanonicalService
	}
	if p.Version == "" {
		p.Version = p.CanonicalRevision
	}
	return p.orUnknown()
}

func (p Peer) orUnknown() Peer {
	for _, f := range []*string{&p.Workload, &p.Namespace, &p.Principal, &p.App, &p.Version,
		&p.CanonicalService, &p.CanonicalRevision, &p.Cluster} {
		if *f == "" {
			*f = Unknown
		}
	}
	return p
}

func (s Service) orUnknown() Service {
	for _, f := range []*string{&s.Host, &s.Name, &s.Namespace} {
		if *f == "" {
			*f = Unknown
		}
	}
	return s
}

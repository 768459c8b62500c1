package adsclient

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeConfig describes the waypoint to istiod as Istio's agent does
// (pilot-agent's node metadata, the JSON names of Istio's NodeMetadata).
// Zero fields are left out of the metadata. Package xds/istiod fills one
// from a pod's environment and downward API files (istiod.BuildNode).
type NodeConfig struct {
	IP, PodName, Namespace string // the id: waypoint~IP~POD.NS~NS.svc.cluster.local
	// OtherIPs are the pod's other addresses (a dual-stack pod's other
	// family): INSTANCE_IPS is IP then these, from which istiod tells an
	// IPv4, IPv6 or dual-stack proxy (and gives a dual-stack one's
	// listeners additional_addresses).
	OtherIPs  []string
	DNSDomain string // default "<Namespace>.svc.cluster.local" (pilot-agent's --domain)
	// ServiceCluster is node.cluster (pilot-agent's --serviceCluster);
	// default "<ServiceAccount>.<Namespace>", as istiod's waypoint
	// Deployment passes it ("istio-proxy.<Namespace>" without a service
	// account, Istio's default).
	ServiceCluster string
	ServiceAccount string
	ClusterID      string // Kubernetes cluster name, "Kubernetes" by default in Istio
	IstioVersion   string
	MeshID         string
	Network        string
	WorkloadName   string // the Deployment's name
	Owner          string // kubernetes://apis/apps/v1/namespaces/NS/deployments/NAME
	NodeName       string // the Kubernetes node the pod runs on
	Labels         map[string]string
	Annotations    map[string]string
	// Locality is node.locality: where the waypoint runs. istiod orders
	// endpoint priorities by it under locality load balancing.
	Locality Locality
	// Meta holds the other metadata entries (ISTIO_META_* and
	// ISTIO_METAJSON_* of the environment: INTERCEPTION_MODE...), by key;
	// values are strings or JSON values (structpb.NewValue's types). The
	// fields above win over an entry of the same key.
	Meta map[string]any
}

// Locality is a node's region, zone and sub-zone.
type Locality struct {
	Region, Zone, SubZone string
}

// InstanceIPs is the INSTANCE_IPS metadata: IP, then the OtherIPs that
// differ from it, separated by commas.
func (n NodeConfig) InstanceIPs() string {
	if len(n.OtherIPs) == 0 {
		return n.IP
	}
	var ips []string
	for _, ip := range append([]string{n.IP}, n.OtherIPs...) {
		if ip != "" && !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	return strings.Join(ips, ",")
}

// Node renders the node: id waypoint~IP~POD.NS~DOMAIN (the proxy type
// istiod keys a waypoint's config on), cluster the service cluster,
// locality when set, and metadata NAME, NAMESPACE, INSTANCE_IPS,
// SERVICE_ACCOUNT, CLUSTER_ID, MESH_ID, NETWORK, ISTIO_VERSION,
// WORKLOAD_NAME, OWNER, NODE_NAME, LABELS, ANNOTATIONS over the entries of
// Meta.
func (n NodeConfig) Node() *corev3.Node {
	domain := n.DNSDomain
	if domain == "" {
		domain = n.Namespace + ".svc.cluster.local"
	}
	cluster := n.ServiceCluster
	if cluster == "" {
		sa := n.ServiceAccount
		if sa == "" {
			sa = "istio-proxy"
		}
		cluster = sa + "." + n.Namespace
	}
	md := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	set("NAME", n.PodName)
	set("NAMESPACE", n.Namespace)
	set("INSTANCE_IPS", n.InstanceIPs())
	set("SERVICE_ACCOUNT", n.ServiceAccount)
	set("CLUSTER_ID", n.ClusterID)
	set("MESH_ID", n.MeshID)
	set("NETWORK", n.Network)
	set("ISTIO_VERSION", n.IstioVersion)
	set("WORKLOAD_NAME", n.WorkloadName)
	set("OWNER", n.Owner)
	set("NODE_NAME", n.NodeName)
	for key, m := range map[string]map[string]string{"LABELS": n.Labels, "ANNOTATIONS": n.Annotations} {
		if len(m) > 0 {
			s := make(map[string]any, len(m))
			for k, v := range m {
				s[k] = v
			}
			md[key] = s
		}
	}
	all := make(map[string]any, len(n.Meta)+len(md))
	maps.Copy(all, n.Meta)
	maps.Copy(all, md)
	st, err := structpb.NewStruct(all)
	if err != nil {
		// A Meta value structpb does not take: send the typed fields
		// rather than no metadata at all.
		st, _ = structpb.NewStruct(md)
	}
	node := &corev3.Node{
		Id:       fmt.Sprintf("waypoint~%s~%s.%s~%s", n.IP, n.PodName, n.Namespace, domain),
		Cluster:  cluster,
		Metadata: st,
	}
	if n.Locality != (Locality{}) {
		node.Locality = &corev3.Locality{Region: n.Locality.Region, Zone: n.Locality.Zone, SubZone: n.Locality.SubZone}
	}
	return node
}

package adsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeConfig describes the waypoint to istiod as Istio's agent does
// (pilot-agent's node metadata). Zero fields are left out of the metadata.
type NodeConfig struct {
	IP, PodName, Namespace string // the id: waypoint~IP~POD.NS~NS.svc.cluster.local
	DNSDomain              string // default "<Namespace>.svc.cluster.local"
	ServiceAccount         string
	ClusterID              string // Kubernetes cluster name, "Kubernetes" by default in Istio
	IstioVersion           string
	MeshID                 string
	Labels                 map[string]string
}

// Node renders the node: id waypoint~IP~POD.NS~DOMAIN (the proxy type
// istiod keys a waypoint's config on) and metadata NAME, NAMESPACE,
// LABELS, CLUSTER_ID, ISTIO_VERSION, SERVICE_ACCOUNT, MESH_ID, INSTANCE_IPS.
func (n NodeConfig) Node() *corev3.Node {
	domain := n.DNSDomain
	if domain == "" {
		domain = n.Namespace + ".svc.cluster.local"
	}
	md := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	set("NAME", n.PodName)
	set("NAMESPACE", n.Namespace)
	set("CLUSTER_ID", n.ClusterID)
	set("ISTIO_VERSION", n.IstioVersion)
	set("SERVICE_ACCOUNT", n.ServiceAccount)
	set("MESH_ID", n.MeshID)
	set("INSTANCE_IPS", n.IP)
	if len(n.Labels) > 0 {
		labels := map[string]any{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		md["LABELS"] = labels
	}
	st, _ := structpb.NewStruct(md)
	return &corev3.Node{
		Id:       fmt.Sprintf("waypoint~%s~%s.%s~%s", n.IP, n.PodName, n.Namespace, domain),
		Cluster:  n.ClusterID,
		Metadata: st,
	}
}

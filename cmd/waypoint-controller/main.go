// Command waypoint-controller is the waypoint's own Gateway controller
// (kube/controller; docs/controller.md): it creates the GatewayClass
// istio-mesh and deploys every Gateway of it with the waypoint image.
//
//	waypoint-controller [flags]
//
// Flags, with their defaults:
//
//	--kubeconfig FILE                 the API server and credentials; default $KUBECONFIG, else the pod's in-cluster config
//	--image REF                       the waypoint image, unless a Gateway's sidecar.istio.io/proxyImage (with a "/") names one;
//	                                  default localhost/waypoint:<the build's version> (the tag `make image` gives it)
//	--istiod-address HOST:PORT        istiod's xDS and CA address (CA_ADDR, PROXY_CONFIG); istiod.istio-system.svc:15012
//	--system-namespace NS             where the class-defaults ConfigMaps (and the leader's Lease) are; istio-system
//	--class NAME                      the GatewayClass created when missing; istio-mesh
//	--controller-name NAME            the controllerName of the classes deployed (and of the class created);
//	                                  waypoint.gowaypoint.io/controller
//	--trust-domain DOMAIN             TRUST_DOMAIN and ISTIO_META_MESH_ID of the pods; cluster.local
//	--cluster-id ID                   ISTIO_META_CLUSTER_ID; Kubernetes
//	--cluster-domain DOMAIN           the pods' --domain suffix and the Gateways' hostnames; cluster.local
//	--network NAME                    ISTIO_META_NETWORK and the topology.istio.io/network label; none
//	--leader-elect                    elect one leader among the replicas, by a Lease in $POD_NAMESPACE
//	                                  (else --system-namespace); false
//	--metrics-bind-address ADDR       controller-runtime's Prometheus metrics (/metrics), "0" for none; :8080
//	--health-probe-bind-address ADDR  /healthz and /readyz, "0" for none; :8081
//	--log-level LEVEL                 debug, info, warn or error; info
//	--log-format FORMAT               text or json; text
//
// It runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/kube/controller"
	"github.com/gowaypoint/waypoint/kube/render"
)

// version is the build's version; `go build -ldflags "-X main.version=V"`
// sets it, else the build info gives one (buildVersion).
var version string

func main() {
	fs := flag.NewFlagSet("waypoint-controller", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: waypoint-controller [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else the in-cluster config)")
	img := fs.String("image", "localhost/waypoint:"+buildVersion(), `the waypoint image, unless a Gateway's sidecar.istio.io/proxyImage annotation (with a "/") names one`)
	istiod := fs.String("istiod-address", render.DefaultIstiodAddress, "istiod's xDS and CA address")
	systemNS := fs.String("system-namespace", controller.DefaultSystemNamespace, "namespace of the class-defaults ConfigMaps (and of the leader election Lease without $POD_NAMESPACE)")
	class := fs.String("class", controller.DefaultClass, "the GatewayClass to create when missing")
	controllerName := fs.String("controller-name", controller.DefaultControllerName, "the controllerName of the GatewayClasses whose Gateways are deployed")
	trustDomain := fs.String("trust-domain", render.DefaultTrustDomain, "the mesh's trust domain")
	clusterID := fs.String("cluster-id", render.DefaultClusterID, "the cluster's id in the mesh")
	clusterDomain := fs.String("cluster-domain", render.DefaultClusterDomain, "the cluster's DNS domain")
	network := fs.String("network", "", "the network of the waypoints (none when empty)")
	leaderElect := fs.Bool("leader-elect", false, "elect one leader among the replicas (a Lease in $POD_NAMESPACE, else --system-namespace)")
	metricsAddr := fs.String("metrics-bind-address", ":8080", `address of the metrics endpoint, "0" for none`)
	healthAddr := fs.String("health-probe-bind-address", ":8081", `address of /healthz and /readyz, "0" for none`)
	logger := cli.LogFlags(fs)
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		cli.Fatal(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}

	log, err := logger()
	if err != nil {
		cli.Fatal(err)
	}
	lr := logr.FromSlogHandler(log.Handler())
	ctrl.SetLogger(lr)
	klog.SetLogger(lr)

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		cli.Fatal(err)
	}
	mgr, err := controller.NewManager(cfg, controller.Options{
		Class:           *class,
		ControllerName:  *controllerName,
		SystemNamespace: *systemNS,
		LeaseNamespace:  os.Getenv("POD_NAMESPACE"),
		Render: render.Options{
			Image:         *img,
			IstiodAddress: *istiod,
			TrustDomain:   *trustDomain,
			ClusterID:     *clusterID,
			ClusterDomain: *clusterDomain,
			Network:       *network,
		},
		LeaderElect:            *leaderElect,
		MetricsBindAddress:     *metricsAddr,
		HealthProbeBindAddress: *healthAddr,
	})
	if err != nil {
		cli.Fatal(err)
	}
	log.Info("waypoint-controller starting", "version", buildVersion(), "class", *class, "controllerName", *controllerName, "image", *img)
	if err := mgr.Start(cli.Signals(context.Background(), nil)); err != nil {
		cli.Fatal(err)
	}
}

// restConfig is the API server's config from file, else $KUBECONFIG,
// else the pod's.
func restConfig(file string) (*rest.Config, error) {
	if file == "" {
		file = os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	}
	if file != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", file)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", file, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --kubeconfig and not in a pod: %w", err)
	}
	return cfg, nil
}

// buildVersion is version, else the tag `make image` (internal/image,
// whose registry is localhost) gives a build of a
// commit without a VERSION file or tags (git describe --always --dirty):
// the commit's first 7 hex digits, -dirty when the tree was modified;
// else "dev".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) < 7 {
		return "dev"
	}
	v := rev[:7]
	if dirty {
		v += "-dirty"
	}
	return v
}

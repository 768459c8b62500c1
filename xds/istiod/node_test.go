package istiod

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/xds/adsclient"
)

// Tests of this package bind no address.

func TestParseDownwardAPI(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "labels as the kubelet writes them",
			in:   "app=\"reviews\"\ngateway.networking.k8s.io/gateway-name=\"waypoint\"\npod-template-hash=\"7d9f\"",
			want: map[string]string{"app": "reviews", "gateway.networking.k8s.io/gateway-name": "waypoint", "pod-template-hash": "7d9f"}},
		{name: "escapes", in: `q="say \"hi\""` + "\n" + `nl="line1\nline2"` + "\n" + `bs="a\\b"` + "\n" + `u="caf\u00e9 \xe2\x9c\x93"` + "\n" + `eq="a=b"` + "\n",
			want: map[string]string{"q": `say "hi"`, "nl": "line1\nline2", "bs": `a\b`, "u": "café ✓", "eq": "a=b"}},
		{name: "blank lines and CRLF", in: "\n a=\"1\" \r\n\n\nb=\"\"\n", want: map[string]string{"a": "1", "b": ""}},
		{name: "a JSON annotation", in: `kubectl.kubernetes.io/last-applied-configuration="{\"apiVersion\":\"v1\"}\n"`,
			want: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}\n"}},
		{name: "no equals", in: "a=\"1\"\nnovalue\n", err: "line 2: want key=\"value\""},
		{name: "no key", in: `="v"`, err: "line 1: want key"},
		{name: "unquoted", in: "k=v", err: "line 1: k: the value is not a quoted string: v"},
		{name: "unterminated", in: `k="v`, err: "line 1: k: the value is not a quoted string"},
		{name: "backquoted", in: "k=`v`", err: "not a quoted string"},
		{name: "bad escape", in: `k="\q"`, err: "not a quoted string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDownwardAPI([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// deploymentEnv is the environment istiod's waypoint Deployment gives its
// container (../shared/istiod/live/waypoint-deployment.yaml), with the
// downward API's values of a pod.
var deploymentEnv = []string{
	"ISTIO_META_SERVICE_ACCOUNT=waypoint",
	"ISTIO_META_NODE_NAME=kind-worker",
	"PILOT_CERT_PROVIDER=istiod",
	"CA_ADDR=istiod.istio-system.svc:15012",
	"POD_NAME=waypoint-6c8d5b7f4-x2x9q",
	"POD_NAMESPACE=loft",
	"INSTANCE_IP=10.244.1.7",
	"SERVICE_ACCOUNT=waypoint",
	"HOST_IP=172.18.0.3",
	"ISTIO_CPU_LIMIT=2",
	"PROXY_CONFIG={}\n",
	"ISTIO_META_CLUSTER_ID=Kubernetes",
	"ISTIO_META_INTERCEPTION_MODE=REDIRECT",
	"ISTIO_META_WORKLOAD_NAME=waypoint",
	"ISTIO_META_OWNER=kubernetes://apis/apps/v1/namespaces/loft/deployments/waypoint",
	"ISTIO_META_MESH_ID=cluster.local",
	"TRUST_DOMAIN=cluster.local",
	"PATH=/usr/local/bin:/usr/bin",
}

// The pod's downward API files, as the kubelet writes them for that
// Deployment's pod.
const (
	deploymentLabels = `gateway.istio.io/managed="istio.io-mesh-controller"
gateway.networking.k8s.io/gateway-class-name="istio-waypoint"
gateway.networking.k8s.io/gateway-name="loft-waypoint"
istio.io/dataplane-mode="none"
istio.io/waypoint-for="service"
pod-template-hash="6c8d5b7f4"
service.istio.io/canonical-name="waypoint"
service.istio.io/canonical-revision="latest"
sidecar.istio.io/inject="false"`
	deploymentAnnotations = `istio.io/rev="default"
kubernetes.io/config.seen="2026-08-27T12:45:20.123456789Z"
prometheus.io/path="/stats/prometheus"
prometheus.io/port="15020"
prometheus.io/scrape="true"
sidecar.istio.io/proxyImage="registry.example/gowaypoint/waypoint:dev"
`
)

func writePodInfo(t *testing.T, labels, annotations string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{PodLabelsFile: labels, PodAnnotationsFile: annotations} {
		if data == "-" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// buildInfo returns a build info with istio.io/api at version v, or without
// it when v is empty.
func buildInfo(v string) func() (*debug.BuildInfo, bool) {
	return func() (*debug.BuildInfo, bool) {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/gowaypoint/waypoint"},
			Deps: []*debug.Module{{Path: "google.golang.org/grpc", Version: "v1.85.0"}}}
		if v != "" {
			bi.Deps = append(bi.Deps, &debug.Module{Path: "istio.io/api", Version: v})
		}
		return bi, true
	}
}

// In the pod of istiod's waypoint Deployment, the node is what Istio's agent
// sends there: nothing of it comes from the code.
func TestBuildNodeInTheDeployment(t *testing.T) {
	dir := writePodInfo(t, deploymentLabels, deploymentAnnotations)
	n, err := BuildNode(NodeSource{Environ: deploymentEnv, PodInfoDir: dir, BuildInfo: buildInfo("v1.32.0"),
		Defaults: NodeFlags{IP: "127.0.0.5", PodName: "waypoint", Namespace: "default", ServiceAccount: "waypoint", ClusterID: "Kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	want := adsclient.NodeConfig{IP: "10.244.1.7", PodName: "waypoint-6c8d5b7f4-x2x9q", Namespace: "loft", ServiceAccount: "waypoint",
		ClusterID: "Kubernetes", IstioVersion: "1.32.0", MeshID: "cluster.local", WorkloadName: "waypoint",
		Owner: "kubernetes://apis/apps/v1/namespaces/loft/deployments/waypoint", NodeName: "kind-worker",
		Labels: map[string]string{"gateway.istio.io/managed": "istio.io-mesh-controller", "gateway.networking.k8s.io/gateway-class-name": "istio-waypoint",
			"gateway.networking.k8s.io/gateway-name": "loft-waypoint", "istio.io/dataplane-mode": "none", "istio.io/waypoint-for": "service",
			"service.istio.io/canonical-name": "waypoint", "service.istio.io/canonical-revision": "latest", "sidecar.istio.io/inject": "false"},
		Annotations: map[string]string{"istio.io/rev": "default", "kubernetes.io/config.seen": "2026-08-27T12:45:20.123456789Z",
			"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true",
			"sidecar.istio.io/proxyImage": "registry.example/gowaypoint/waypoint:dev"},
		Meta: map[string]any{"INTERCEPTION_MODE": "REDIRECT"}}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Fatalf("node config (-want +got)\n%s", diff)
	}

	node := n.Node()
	if node.GetId() != "waypoint~10.244.1.7~waypoint-6c8d5b7f4-x2x9q.loft~loft.svc.cluster.local" || node.GetCluster() != "waypoint.loft" {
		t.Errorf("id %q, cluster %q", node.GetId(), node.GetCluster())
	}
	md := node.GetMetadata().AsMap()
	for k, v := range map[string]any{"NAME": "waypoint-6c8d5b7f4-x2x9q", "NAMESPACE": "loft", "INSTANCE_IPS": "10.244.1.7",
		"SERVICE_ACCOUNT": "waypoint", "CLUSTER_ID": "Kubernetes", "MESH_ID": "cluster.local", "ISTIO_VERSION": "1.32.0",
		"WORKLOAD_NAME": "waypoint", "OWNER": "kubernetes://apis/apps/v1/namespaces/loft/deployments/waypoint",
		"NODE_NAME": "kind-worker", "INTERCEPTION_MODE": "REDIRECT"} {
		if md[k] != v {
			t.Errorf("metadata %s = %v, want %v", k, md[k], v)
		}
	}
	if gw := md["LABELS"].(map[string]any)["gateway.networking.k8s.io/gateway-name"]; gw != "loft-waypoint" {
		t.Errorf("LABELS gateway name %v", gw)
	}
	if a := md["ANNOTATIONS"].(map[string]any)["istio.io/rev"]; a != "default" {
		t.Errorf("ANNOTATIONS istio.io/rev %v", a)
	}
	if _, ok := md["NETWORK"]; ok {
		t.Error("NETWORK sent without ISTIO_META_NETWORK")
	}
}

func TestBuildNode(t *testing.T) {
	defaults := NodeFlags{IP: "127.0.0.5", PodName: "waypoint", Namespace: "default", ServiceAccount: "waypoint", ClusterID: "Kubernetes"}
	for _, tc := range []struct {
		name                string
		flags               NodeFlags
		env                 []string
		labels, annotations string // file contents; "-" for no file
		noDir               bool
		build               string // istio.io/api version in the build info
		check               func(t *testing.T, n adsclient.NodeConfig)
		err                 string
	}{
		{name: "nothing: the defaults, no labels", labels: "-", annotations: "-", noDir: true,
			check: func(t *testing.T, n adsclient.NodeConfig) {
				want := adsclient.NodeConfig{IP: "127.0.0.5", PodName: "waypoint", Namespace: "default", ServiceAccount: "waypoint", ClusterID: "Kubernetes"}
				if diff := cmp.Diff(want, n); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			}},
		{name: "flags win over the environment",
			flags: NodeFlags{IP: "10.0.0.9", PodName: "p", Namespace: "ns", ServiceAccount: "sa", ClusterID: "c2", DNSDomain: "ns.svc.corp",
				ServiceCluster: "sc.ns", IstioVersion: "1.99.0"},
			env: []string{"INSTANCE_IP=10.0.0.1", "POD_NAME=pod", "POD_NAMESPACE=loft", "SERVICE_ACCOUNT=wp", "ISTIO_META_CLUSTER_ID=c1",
				"ISTIO_META_ISTIO_VERSION=1.31.0"},
			labels: "-", annotations: "-", build: "v1.32.0",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				want := adsclient.NodeConfig{IP: "10.0.0.9", PodName: "p", Namespace: "ns", ServiceAccount: "sa", ClusterID: "c2",
					DNSDomain: "ns.svc.corp", ServiceCluster: "sc.ns", IstioVersion: "1.99.0"}
				if diff := cmp.Diff(want, n); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
				if id := n.Node().GetId(); id != "waypoint~10.0.0.9~p.ns~ns.svc.corp" {
					t.Errorf("id %q", id)
				}
			}},
		{name: "a dual-stack pod: INSTANCE_IPS from the environment, the node IP first",
			env: []string{"INSTANCE_IP=10.0.0.1", "INSTANCE_IPS=fd00::1,10.0.0.1"}, labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if got := n.Node().GetMetadata().AsMap()["INSTANCE_IPS"]; got != "10.0.0.1,fd00::1" || n.IP != "10.0.0.1" {
					t.Errorf("INSTANCE_IPS %v, IP %s", got, n.IP)
				}
			}},
		{name: "--node-ips over INSTANCE_IPS",
			flags: NodeFlags{IPs: "::1"}, env: []string{"INSTANCE_IP=10.0.0.1", "INSTANCE_IPS=fd00::1"}, labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if got := n.InstanceIPs(); got != "10.0.0.1,::1" {
					t.Errorf("INSTANCE_IPS %v", got)
				}
			}},
		{name: "INSTANCE_IPS not an IP", env: []string{"INSTANCE_IPS=10.0.0.1,pod"}, labels: "-", annotations: "-",
			err: `node INSTANCE_IPS: "pod" is not an IP address`},
		{name: "the downward API env wins over ISTIO_META_ of the same key",
			env:    []string{"ISTIO_META_NAME=meta-pod", "POD_NAME=pod", "ISTIO_META_NAMESPACE=meta-ns", "ISTIO_META_SERVICE_ACCOUNT=meta-sa"},
			labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if n.PodName != "pod" || n.Namespace != "meta-ns" || n.ServiceAccount != "meta-sa" || n.Meta != nil {
					t.Errorf("pod %q ns %q sa %q meta %v", n.PodName, n.Namespace, n.ServiceAccount, n.Meta)
				}
			}},
		{name: "ISTIO_VERSION from the build", build: "v1.32.0", labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) { wantVersion(t, n, "1.32.0") }},
		{name: "ISTIO_VERSION from the environment over the build", build: "v1.32.0", env: []string{"ISTIO_META_ISTIO_VERSION=1.31.2"},
			labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) { wantVersion(t, n, "1.31.2") }},
		{name: "ISTIO_VERSION from the flag over both", build: "v1.32.0", env: []string{"ISTIO_META_ISTIO_VERSION=1.31.2"},
			flags: NodeFlags{IstioVersion: "1.33.0-alpha.1"}, labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) { wantVersion(t, n, "1.33.0-alpha.1") }},
		{name: "no ISTIO_VERSION when the build has no istio.io/api", labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				wantVersion(t, n, "")
				if _, ok := n.Node().GetMetadata().AsMap()["ISTIO_VERSION"]; ok {
					t.Error("an empty ISTIO_VERSION is sent")
				}
			}},
		{name: "labels: the file over ISTIO_METAJSON_LABELS, the flags over both",
			env:    []string{`ISTIO_METAJSON_LABELS={"app":"json","version":"json","topology.istio.io/network":"n1"}`},
			labels: "app=\"file\"\nversion=\"file\"\npod-template-hash=\"abc\"\n", annotations: "-",
			flags: NodeFlags{Labels: map[string]string{"version": "flag", "gateway.networking.k8s.io/gateway-name": "test-gw"}},
			check: func(t *testing.T, n adsclient.NodeConfig) {
				want := map[string]string{"app": "file", "version": "flag", "topology.istio.io/network": "n1",
					"gateway.networking.k8s.io/gateway-name": "test-gw"}
				if diff := cmp.Diff(want, n.Labels); diff != "" {
					t.Errorf("labels (-want +got)\n%s", diff)
				}
				if n.Meta != nil {
					t.Errorf("meta %v: LABELS kept apart", n.Meta)
				}
			}},
		{name: "annotations: the file over ISTIO_METAJSON_ANNOTATIONS",
			env:    []string{`ISTIO_METAJSON_ANNOTATIONS={"a":"json","b":"json"}`},
			labels: "-", annotations: `b="file \"quoted\""`,
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if diff := cmp.Diff(map[string]string{"a": "json", "b": `file "quoted"`}, n.Annotations); diff != "" {
					t.Errorf("annotations (-want +got)\n%s", diff)
				}
			}},
		{name: "other ISTIO_META_ and ISTIO_METAJSON_ entries pass through",
			env: []string{"ISTIO_META_INTERCEPTION_MODE=REDIRECT", "ISTIO_META_DNS_CAPTURE=true", "ISTIO_META_=ignored",
				`ISTIO_METAJSON_PLATFORM_METADATA={"gcp_project":"p1","n":2}`, "ISTIO_META_NETWORK=net-1",
				"ISTIO_META_X=string", `ISTIO_METAJSON_X=["json","wins"]`, "ISTIO_META_INTERCEPTION_MODE=TPROXY"},
			labels: "-", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				want := map[string]any{"INTERCEPTION_MODE": "REDIRECT", "DNS_CAPTURE": "true",
					"PLATFORM_METADATA": map[string]any{"gcp_project": "p1", "n": float64(2)}, "X": []any{"json", "wins"}}
				if diff := cmp.Diff(want, n.Meta); diff != "" {
					t.Errorf("meta (-want +got)\n%s", diff)
				}
				if n.Network != "net-1" {
					t.Errorf("network %q", n.Network)
				}
				md := n.Node().GetMetadata().AsMap()
				if md["NETWORK"] != "net-1" || !reflect.DeepEqual(md["X"], []any{"json", "wins"}) || md["DNS_CAPTURE"] != "true" {
					t.Errorf("metadata %v", md)
				}
			}},
		{name: "a missing directory is no error", noDir: true, env: []string{"POD_NAME=p"},
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if n.PodName != "p" || n.Labels != nil || n.Annotations != nil {
					t.Errorf("%+v", n)
				}
			}},
		{name: "locality from topology.istio.io/locality, dotted", labels: "topology.istio.io/locality=\"region1.zone1.sub1\"\nistio-locality=\"r9\"\n", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				want := adsclient.Locality{Region: "region1", Zone: "zone1", SubZone: "sub1"}
				if n.Locality != want {
					t.Errorf("locality %+v, want %+v", n.Locality, want)
				}
				if l := n.Node().GetLocality(); l.GetRegion() != "region1" || l.GetZone() != "zone1" || l.GetSubZone() != "sub1" {
					t.Errorf("node.locality %v", l)
				}
				if got := n.Labels["istio-locality"]; got != "region1/zone1/sub1" {
					t.Errorf("istio-locality label %q, want it rewritten with slashes, as Istio's agent does", got)
				}
			}},
		{name: "locality from istio-locality, region only", labels: "istio-locality=\"r2\"\n", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if want := (adsclient.Locality{Region: "r2"}); n.Locality != want {
					t.Errorf("locality %+v, want %+v", n.Locality, want)
				}
			}},
		{name: "no locality label: no node.locality", labels: "app=\"waypoint\"\n", annotations: "-",
			check: func(t *testing.T, n adsclient.NodeConfig) {
				if l := n.Node().GetLocality(); l != nil {
					t.Errorf("node.locality %v, want none", l)
				}
			}},
		{name: "a malformed labels file", labels: "app=\"ok\"\napp=reviews\n", annotations: "-", err: "labels: line 2: app: the value is not a quoted string"},
		{name: "a malformed annotations file", labels: "-", annotations: "garbage", err: "annotations: line 1: want key=\"value\""},
		{name: "an unreadable labels file", labels: "dir", annotations: "-", err: "labels: is a directory"},
		{name: "ISTIO_METAJSON_LABELS not JSON", env: []string{"ISTIO_METAJSON_LABELS=app=x"}, labels: "-", annotations: "-",
			err: "ISTIO_METAJSON_LABELS: want a JSON object of strings"},
		{name: "ISTIO_METAJSON_LABELS not strings", env: []string{`ISTIO_METAJSON_LABELS={"n":1}`}, labels: "-", annotations: "-",
			err: "ISTIO_METAJSON_LABELS: want a JSON object of strings"},
		{name: "ISTIO_META_LABELS", env: []string{"ISTIO_META_LABELS=app=x"}, labels: "-", annotations: "-",
			err: "ISTIO_META_LABELS: LABELS is an object: set ISTIO_METAJSON_LABELS"},
		{name: "ISTIO_METAJSON_ not JSON", env: []string{"ISTIO_METAJSON_FOO={"}, labels: "-", annotations: "-",
			err: "ISTIO_METAJSON_FOO: unexpected end of JSON input"},
		{name: "a typed key of another JSON type", env: []string{`ISTIO_METAJSON_MESH_ID={"a":1}`}, labels: "-", annotations: "-",
			err: "ISTIO_METAJSON_MESH_ID: want a string, got map[string]interface {}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "absent")
			if !tc.noDir {
				dir = writePodInfo(t, tc.labels, tc.annotations)
				if tc.labels == "dir" {
					os.Remove(filepath.Join(dir, PodLabelsFile))
					if err := os.Mkdir(filepath.Join(dir, PodLabelsFile), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			n, err := BuildNode(NodeSource{Flags: tc.flags, Defaults: defaults, Environ: tc.env, PodInfoDir: dir, BuildInfo: buildInfo(tc.build)})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(tc.name, "file") && !strings.Contains(err.Error(), dir) {
					t.Errorf("error %v does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, n)
		})
	}
}

func wantVersion(t *testing.T, n adsclient.NodeConfig, v string) {
	t.Helper()
	if n.IstioVersion != v {
		t.Errorf("ISTIO_VERSION %q, want %q", n.IstioVersion, v)
	}
	if got, _ := n.Node().GetMetadata().AsMap()["ISTIO_VERSION"].(string); got != v {
		t.Errorf("metadata ISTIO_VERSION %q, want %q", got, v)
	}
}

func TestIstioVersionOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"nil", nil, ""},
		{"a release", &debug.BuildInfo{Deps: []*debug.Module{{Path: "istio.io/api", Version: "v1.32.0"}}}, "1.32.0"},
		{"a pseudo-version", &debug.BuildInfo{Deps: []*debug.Module{{Path: "istio.io/api", Version: "v1.31.0-rc.0.0.20260824154656-b943409680a7"}}},
			"1.31.0-rc.0.0.20260824154656-b943409680a7"},
		{"replaced", &debug.BuildInfo{Deps: []*debug.Module{{Path: "istio.io/api", Version: "v1.32.0",
			Replace: &debug.Module{Path: "example.com/fork/api", Version: "v1.32.1"}}}}, "1.32.1"},
		{"replaced by a directory", &debug.BuildInfo{Deps: []*debug.Module{{Path: "istio.io/api", Version: "v1.32.0",
			Replace: &debug.Module{Path: "../api"}}}}, "1.32.0"},
		{"absent", &debug.BuildInfo{Deps: []*debug.Module{{Path: "istio.io/istio", Version: "v1.32.0"}}}, ""},
		{"the main module in development", &debug.BuildInfo{Main: debug.Module{Path: "istio.io/api", Version: "(devel)"}}, ""},
	} {
		if got := IstioVersionOf(tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

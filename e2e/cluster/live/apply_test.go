package live

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestWaypointApply is `waypoint apply` (issue 14, part C) against the live API server and
// istiod, beside the pinned istioctl's `waypoint apply` and `waypoint generate`: the same
// YAML for the same flags; in the API server the same Gateway spec and labels; the namespace
// enrolment and its --overwrite as istioctl's; a changed field re-applied as istioctl's
// (its own fields change, another manager's are a conflict until --overwrite); --image
// renders our image into the Deployment istiod makes, and its removal renders istiod's
// again; --class istio-mesh; --wait; the in-cluster config of a service account, and the
// API server's refusals shown with their Status message. World number 8 (no addresses are
// used: nothing here serves traffic).
func TestWaypointApply(t *testing.T) {
	const ns = "apply"
	ctx := context.Background()
	if err := env.cluster.Apply(ctx, `
apiVersion: v1
kind: Namespace
metadata:
  name: `+ns+`
  labels:
    istio.io/dataplane-mode: ambient
`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		env.cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	home := t.TempDir() // no ~/.kube/config: apply reads only what a test gives it
	// asAdmin is `waypoint apply` with the admin's kubeconfig and args.
	asAdmin := func(args ...string) []string {
		return append([]string{"apply", "--kubeconfig", env.cluster.Kubeconfig}, args...)
	}

	if !t.Run("generate as istioctl", func(t *testing.T) {
		for _, args := range [][]string{
			nil,
			{"-n", ns},
			{"-n", ns, "--for", "service"},
			{"--namespace", ns, "--name", "reviews-wp", "--for", "workload", "-r", "canary"},
			{"--name", "", "--for", "none"},
			{"--for", "all", "--revision", "1-29"},
		} {
			ours, err := runWaypoint(home, nil, append([]string{"generate"}, args...)...)
			if err != nil {
				t.Fatalf("waypoint generate %v: %v\n%s", args, err, ours)
			}
			theirs, err := runIstioctl(append([]string{"waypoint", "generate"}, args...)...)
			if err != nil {
				t.Fatalf("istioctl waypoint generate %v: %v\n%s", args, err, theirs)
			}
			if ours != theirs {
				t.Errorf("generate %v: waypoint printed\n%s\nistioctl printed\n%s", args, ours, theirs)
			}
		}
		// Refused as istioctl refuses them, with istioctl's words.
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--name", "none"}, "invalid name provided for waypoint, 'none' is a reserved value"},
			{[]string{"--for", "pods"}, "invalid traffic type: pods. Valid options are: [all none service workload]"},
		} {
			ours, err := runWaypoint(home, nil, append([]string{"generate"}, c.args...)...)
			theirs, err2 := runIstioctl(append([]string{"waypoint", "generate"}, c.args...)...)
			if err == nil || err2 == nil {
				t.Errorf("generate %v: waypoint %v, istioctl %v: want both to fail", c.args, err, err2)
			}
			mustContain(t, ours, c.want)
			mustContain(t, theirs, c.want)
		}
	}) {
		return
	}

	const image = "localhost/waypoint:apply"
	if !t.Run("apply as istioctl, with our image", func(t *testing.T) {
		out := mustWaypoint(t, home, nil, asAdmin("-n", ns, "--for", "service", "--enroll-namespace", "--image", image)...)
		mustContain(t, out, "waypoint apply/waypoint applied (class istio-waypoint, image "+image+")",
			`namespace apply labeled with "istio.io/use-waypoint: waypoint"`)
		if out, err := runIstioctl("waypoint", "apply", "-n", ns, "--name", "reference", "--for", "service"); err != nil {
			t.Fatalf("istioctl waypoint apply: %v\n%s", err, out)
		}
		ours, theirs := getGateway(t, ns, "waypoint"), getGateway(t, ns, "reference")
		if !reflect.DeepEqual(ours.Object["spec"], theirs.Object["spec"]) {
			t.Errorf("spec: waypoint applied %v, istioctl %v", ours.Object["spec"], theirs.Object["spec"])
		}
		if !reflect.DeepEqual(ours.GetLabels(), theirs.GetLabels()) || ours.GetLabels()["istio.io/waypoint-for"] != "service" {
			t.Errorf("labels: waypoint applied %v, istioctl %v", ours.GetLabels(), theirs.GetLabels())
		}
		if got := ours.GetAnnotations()["sidecar.istio.io/proxyImage"]; got != image {
			t.Errorf("annotations %v: want sidecar.istio.io/proxyImage %s", ours.GetAnnotations(), image)
		}
		if m := appliedBy(ours); m != "waypoint" {
			t.Errorf("the Gateway's apply manager is %q, want waypoint", m)
		}
		if got := namespaceLabel(t, ns); got != "waypoint" {
			t.Errorf("namespace label istio.io/use-waypoint %q, want waypoint", got)
		}
		// istiod accepts it: it renders the Deployment, with our image.
		eventually(t, time.Minute, "istiod renders the Deployment with our image", func() error {
			return deploymentImage(ns, "waypoint", func(img string) bool { return img == image })
		})
		eventually(t, time.Minute, "istiod renders the reference Deployment", func() error {
			return deploymentImage(ns, "reference", func(img string) bool { return img != "" && img != image })
		})
	}) {
		return
	}

	t.Run("an enrolled namespace without --overwrite, as istioctl", func(t *testing.T) {
		theirs, err := runIstioctl("waypoint", "apply", "-n", ns, "--name", "reference2", "--enroll-namespace")
		if err != nil {
			t.Fatalf("istioctl: %v\n%s", err, theirs)
		}
		mustContain(t, theirs, "already has an enrolled Waypoint")
		ours := mustWaypoint(t, home, nil, asAdmin("-n", ns, "--name", "second", "--enroll-namespace")...)
		mustContain(t, ours, "already has an enrolled waypoint (istio.io/use-waypoint=waypoint): nothing applied")
		for _, name := range []string{"reference2", "second"} {
			if _, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", ns, name); err == nil {
				t.Errorf("Gateway %s was applied", name)
			}
		}
		if got := namespaceLabel(t, ns); got != "waypoint" {
			t.Errorf("namespace label %q, want waypoint still", got)
		}
		ours = mustWaypoint(t, home, nil, asAdmin("-n", ns, "--name", "second", "--enroll-namespace", "--overwrite")...)
		mustContain(t, ours, "waypoint apply/second applied", `namespace apply labeled with "istio.io/use-waypoint: second"`)
		getGateway(t, ns, "second")
		if got := namespaceLabel(t, ns); got != "second" {
			t.Errorf("namespace label %q, want second", got)
		}
	})

	t.Run("a changed field re-applied, as istioctl", func(t *testing.T) {
		// Its own fields: the manager's new apply wins, for istioctl and for us.
		if out, err := runIstioctl("waypoint", "apply", "-n", ns, "--name", "reference", "--for", "workload"); err != nil {
			t.Fatalf("istioctl: %v\n%s", err, out)
		}
		mustWaypoint(t, home, nil, asAdmin("-n", ns, "--for", "workload", "--image", image)...)
		for _, name := range []string{"reference", "waypoint"} {
			if got := getGateway(t, ns, name).GetLabels()["istio.io/waypoint-for"]; got != "workload" {
				t.Errorf("%s: istio.io/waypoint-for %q, want workload", name, got)
			}
		}
		// Another manager's field: a conflict, for istioctl (which never forces) and for us
		// until --overwrite.
		theirs, err := runIstioctl("waypoint", "apply", "-n", ns, "--for", "all")
		if err == nil {
			t.Errorf("istioctl changed the label waypoint applied:\n%s", theirs)
		}
		mustContain(t, theirs, `conflict with "waypoint"`)
		t.Logf("istioctl, refused:\n%s", theirs)
		ours, err := runWaypoint(home, nil, asAdmin("-n", ns, "--name", "reference", "--for", "service")...)
		if err == nil {
			t.Errorf("waypoint changed the label istioctl applied:\n%s", ours)
		}
		mustContain(t, ours, "the API server answered 409 Conflict", `conflict with "istioctl"`, "--overwrite takes those fields over")
		t.Logf("waypoint, refused:\n%s", ours)
		if got := getGateway(t, ns, "reference").GetLabels()["istio.io/waypoint-for"]; got != "workload" {
			t.Errorf("reference: istio.io/waypoint-for %q after the conflict, want workload", got)
		}
		mustWaypoint(t, home, nil, asAdmin("-n", ns, "--name", "reference", "--for", "service", "--overwrite")...)
		if got := getGateway(t, ns, "reference").GetLabels()["istio.io/waypoint-for"]; got != "service" {
			t.Errorf("reference: istio.io/waypoint-for %q after --overwrite, want service", got)
		}
	})

	t.Run("without --image, istiod's image again", func(t *testing.T) {
		mustWaypoint(t, home, nil, asAdmin("-n", ns, "--for", "workload")...)
		if a := getGateway(t, ns, "waypoint").GetAnnotations(); a["sidecar.istio.io/proxyImage"] != "" {
			t.Errorf("annotations %v: want the image annotation gone", a)
		}
		eventually(t, time.Minute, "istiod renders the Deployment with its own image", func() error {
			return deploymentImage(ns, "waypoint", func(img string) bool { return img != "" && img != image })
		})
	})

	t.Run("class istio-mesh", func(t *testing.T) {
		out := mustWaypoint(t, home, nil, asAdmin("-n", ns, "--name", "mesh", "--class", "istio-mesh", "--image", "localhost/waypoint:mesh")...)
		mustContain(t, out, "waypoint apply/mesh applied (class istio-mesh, image localhost/waypoint:mesh)")
		gw := getGateway(t, ns, "mesh")
		if class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName"); class != "istio-mesh" {
			t.Errorf("gatewayClassName %q", class)
		}
		if a := gw.GetAnnotations()["sidecar.istio.io/proxyImage"]; a != "localhost/waypoint:mesh" {
			t.Errorf("image annotation %q", a)
		}
	})

	t.Run("wait", func(t *testing.T) {
		// With no kubelet, istiod marks the Gateway Programmed once its Service has an
		// endpoint: until then --wait runs out.
		out, err := runWaypoint(home, nil, asAdmin("-n", ns, "--name", "waited", "--wait", "--waypoint-timeout", "3s")...)
		if err == nil {
			t.Fatalf("apply --wait returned before the Gateway could be Programmed:\n%s", out)
		}
		mustContain(t, out, "waypoint apply/waited applied", "apply: waypoint apply/waited: not Programmed after 3s (")
		t.Logf("waypoint, timed out:\n%s", out)
		eventually(t, time.Minute, "istiod deploys the Service", func() error {
			_, err := env.cluster.Client.CoreV1().Services(ns).Get(ctx, "waited", metav1.GetOptions{})
			return err
		})
		if err := env.cluster.Apply(ctx, `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: waited-0
  namespace: `+ns+`
  labels:
    kubernetes.io/service-name: waited
addressType: IPv4
ports:
- name: mesh
  port: 15008
  protocol: TCP
endpoints:
- addresses: ["10.244.0.8"]
  conditions: {ready: true}
`); err != nil {
			t.Fatal(err)
		}
		out = mustWaypoint(t, home, nil, asAdmin("-n", ns, "--name", "waited", "-w", "--waypoint-timeout", "60s")...)
		mustContain(t, out, "waypoint apply/waited is ready (Programmed)")
		if !conditionTrue(getGateway(t, ns, "waited"), "Programmed") {
			t.Errorf("the Gateway is not Programmed")
		}
	})

	t.Run("the API server's refusals", func(t *testing.T) {
		out, err := runWaypoint(home, nil, asAdmin("-n", ns, "--name", "Bad_Name")...)
		if err == nil {
			t.Errorf("an invalid name was applied:\n%s", out)
		}
		mustContain(t, out, "the API server answered 422 Invalid:", "Bad_Name", "metadata.name: Invalid value")
		t.Logf("waypoint, refused:\n%s", out)
		out, err = runWaypoint(home, nil, asAdmin("-n", "no-such-namespace")...)
		if err == nil {
			t.Errorf("applied into a missing namespace:\n%s", out)
		}
		mustContain(t, out, "namespace: no-such-namespace not found")
		t.Logf("waypoint, refused:\n%s", out)
	})

	t.Run("in-cluster service account, and a kubeconfig's tokenFile", func(t *testing.T) {
		// A pod's service account directory, materialised under WAYPOINT_POD_ROOT: the token
		// from the TokenRequest API, the API server's CA, the namespace.
		if err := env.cluster.Apply(ctx, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: "+ns+"}\n"); err != nil {
			t.Fatal(err)
		}
		var tok string
		eventually(t, time.Minute, "a token for the deployer", func() (err error) {
			tok, err = env.cluster.ServiceAccountToken(ctx, ns, "deployer", "https://kubernetes.default.svc")
			return err
		})
		root := t.TempDir()
		sa := filepath.Join(root, "var/run/secrets/kubernetes.io/serviceaccount")
		os.MkdirAll(sa, 0o755)
		ca, err := os.ReadFile(kubeconfigCA(t))
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"token": tok, "ca.crt": string(ca), "namespace": ns} {
			if err := os.WriteFile(filepath.Join(sa, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		inPod := []string{"WAYPOINT_POD_ROOT=" + root, "KUBERNETES_SERVICE_HOST=" + env.cluster.IP, "KUBERNETES_SERVICE_PORT=6443"}
		// No rights yet: the API server's Forbidden, its message shown.
		out, err := runWaypoint(home, inPod, "apply", "--name", "insa")
		if err == nil {
			t.Fatalf("applied with no rights:\n%s", out)
		}
		mustContain(t, out, "the API server answered 403 Forbidden:", `User "system:serviceaccount:apply:deployer" cannot get resource "namespaces"`)
		t.Logf("waypoint, refused:\n%s", out)
		// The rights apply needs: namespaces get (and patch, to enroll), gateways get, create
		// (a server-side apply that creates) and patch.
		rbac := `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: waypoint-apply-test}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [get, patch]}
- {apiGroups: [gateway.networking.k8s.io], resources: [gateways], verbs: [get, create, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: waypoint-apply-test}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: waypoint-apply-test}
subjects:
- {kind: ServiceAccount, name: deployer, namespace: ` + ns + `}
`
		if err := env.cluster.Apply(ctx, rbac); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.cluster.Delete(context.Background(), rbac) })
		// The namespace comes from the service account's.
		eventually(t, 30*time.Second, "apply in-cluster", func() error {
			out, err := runWaypoint(home, inPod, "apply", "--name", "insa", "--enroll-namespace", "--overwrite")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if m := appliedBy(getGateway(t, ns, "insa")); m != "waypoint" {
			t.Errorf("manager %q", m)
		}
		if got := namespaceLabel(t, ns); got != "insa" {
			t.Errorf("namespace label %q, want insa", got)
		}
		// The same token from a kubeconfig's tokenFile, its context chosen by --context.
		tokenFile := filepath.Join(root, "token")
		os.WriteFile(tokenFile, []byte(tok), 0o600)
		kc := filepath.Join(root, "kubeconfig")
		os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: nobody
clusters:
- {name: local, cluster: {server: %q, certificate-authority: %q}}
users:
- {name: deployer, user: {tokenFile: token}}
- {name: nobody, user: {token: not-a-token}}
contexts:
- {name: deployer, context: {cluster: local, user: deployer, namespace: %s}}
- {name: nobody, context: {cluster: local, user: nobody}}
`, env.cluster.APIServer, kubeconfigCA(t), ns)), 0o600)
		out, err = runWaypoint(home, []string{"KUBECONFIG=" + kc}, "apply", "--name", "insa")
		if err == nil {
			t.Errorf("applied with a bad token:\n%s", out)
		}
		mustContain(t, out, "the API server answered 401 Unauthorized")
		t.Logf("waypoint, refused:\n%s", out)
		out = mustWaypoint(t, home, []string{"KUBECONFIG=" + kc}, "apply", "--context", "deployer", "--name", "insa", "--for", "all")
		mustContain(t, out, "waypoint apply/insa applied")
		if got := getGateway(t, ns, "insa").GetLabels()["istio.io/waypoint-for"]; got != "all" {
			t.Errorf("istio.io/waypoint-for %q, want all", got)
		}
	})
}

// runWaypoint runs the waypoint binary with args, HOME set to home and extraEnv added (no
// KUBECONFIG of the test's own environment), and returns its output, stdout then stderr.
func runWaypoint(home string, extraEnv []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.waypoint, args...)
	cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, extraEnv...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String() + stderr.String(), err
}

// mustWaypoint is runWaypoint, failing the test when the command fails.
func mustWaypoint(t *testing.T, home string, extraEnv []string, args ...string) string {
	t.Helper()
	out, err := runWaypoint(home, extraEnv, args...)
	if err != nil {
		t.Fatalf("waypoint %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("waypoint %s:\n%s", strings.Join(args, " "), out)
	return out
}

// runIstioctl runs the pinned istioctl with the admin's kubeconfig and returns its output,
// stdout then stderr.
func runIstioctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.bins.Istioctl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.cluster.Kubeconfig)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String() + stderr.String(), err
}

func getGateway(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	gw, err := env.cluster.Get(context.Background(), "gateway.networking.k8s.io/v1", "Gateway", ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// appliedBy is the manager of the object's server-side apply ("" if none applied it).
func appliedBy(o *unstructured.Unstructured) string {
	for _, m := range o.GetManagedFields() {
		if m.Operation == metav1.ManagedFieldsOperationApply && m.Subresource == "" {
			return m.Manager
		}
	}
	return ""
}

func namespaceLabel(t *testing.T, ns string) string {
	t.Helper()
	n, err := env.cluster.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Labels["istio.io/use-waypoint"]
}

// deploymentImage checks the image of the container istio-proxy of the Deployment istiod
// rendered for a Gateway.
func deploymentImage(ns, name string, ok func(string) bool) error {
	d, err := env.cluster.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "istio-proxy" && ok(c.Image) {
			return nil
		}
	}
	return fmt.Errorf("containers %v", d.Spec.Template.Spec.Containers)
}

// kubeconfigCA is the certificate-authority file of the admin's kubeconfig.
func kubeconfigCA(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(env.cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CA string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil || len(kc.Clusters) == 0 || kc.Clusters[0].Cluster.CA == "" {
		t.Fatalf("the admin kubeconfig's certificate-authority: %v\n%s", err, b)
	}
	return kc.Clusters[0].Cluster.CA
}

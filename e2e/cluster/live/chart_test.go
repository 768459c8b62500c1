package live

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/e2e/cluster"
)

// chartDir is charts/waypoint-controller, the chart of mode B's controller.
var chartDir = filepath.Join(cluster.SourceDir(), "..", "..", "charts", "waypoint-controller")

// classDefaultsLabel marks the ConfigMaps of istio-system whose data istiod merges into what it
// renders for every Gateway of the label's class (only the oldest of them).
const classDefaultsLabel = "gateway.istio.io/defaults-for-class"

// TestHelmChart is acceptance point 3's chart: charts/waypoint-controller passes `helm lint`,
// renders with `helm template` as its values say (bad values refused), and every object it
// renders, with the default values and with the class defaults of mode A, is accepted by the
// live API server's server-side apply. Read back: the GatewayClass istio-mesh with the values'
// controllerName, the ClusterRole's rules, the controller's Deployment. With the class defaults
// installed, istiod renders the Deployment of a Gateway of class istio-waypoint with the chart's
// waypoint image.
//
// The class-defaults ConfigMap acts on every Gateway of class istio-waypoint of the shared
// control plane. The test is not parallel, so no other test of the package runs while it
// exists (top-level tests run one at a time; parallel ones only after every sequential one);
// it fails at once if another such ConfigMap is there (istiod would use the oldest), and its
// cleanup deletes the ConfigMap and waits until istiod has rendered the world's Deployment
// without it again, so that no later test meets it, not even in istiod's informer cache.
func TestHelmChart(t *testing.T) {
	meta := readChartMeta(t)
	waypointImage := meta.Values.WaypointImage.Repository + ":" + meta.AppVersion

	for _, set := range [][]string{nil, {"--set", "istioWaypointDefaults.enabled=true", "--set", "replicas=2"}} {
		out, err := helmCommand(t, append([]string{"lint", "--strict", chartDir}, set...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm lint %v: %v\n%s", set, err, out)
		}
		t.Logf("helm lint %v:\n%s", set, out)
	}

	t.Run("render", func(t *testing.T) { testChartRender(t, meta) })

	ctx := context.Background()
	defaults := renderChart(t)
	applyChart(t, defaults)

	gc, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", "istio-mesh")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); got != meta.Values.GatewayClass.ControllerName {
		t.Errorf("GatewayClass istio-mesh: controllerName %q, want the values' %q", got, meta.Values.GatewayClass.ControllerName)
	}
	cr, err := env.cluster.Client.RbacV1().ClusterRoles().Get(ctx, "waypoint-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cr.Rules, controllerRules) {
		t.Errorf("ClusterRole waypoint-controller's rules:\n%s\nwant:\n%s", yamlOf(cr.Rules), yamlOf(controllerRules))
	}
	crb, err := env.cluster.Client.RbacV1().ClusterRoleBindings().Get(ctx, "waypoint-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: "waypoint-controller", Namespace: "istio-system"}
	if crb.RoleRef.Name != "waypoint-controller" || len(crb.Subjects) != 1 || crb.Subjects[0] != wantSubject {
		t.Errorf("ClusterRoleBinding: roleRef %+v, subjects %+v", crb.RoleRef, crb.Subjects)
	}
	if _, err := env.cluster.Client.CoreV1().ServiceAccounts("istio-system").Get(ctx, "waypoint-controller", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	d, err := env.cluster.Client.AppsV1().Deployments("istio-system").Get(ctx, "waypoint-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkControllerDeployment(t, d, meta)

	// Mode A's class defaults: the same release with istioWaypointDefaults on adds one
	// ConfigMap, which istiod merges into the Deployment of a Gateway of class istio-waypoint.
	w := newWorldNoWaypoint(t, 7, "helm-chart", nil)
	withDefaults := renderChart(t, "--set", "istioWaypointDefaults.enabled=true")
	if n, m := len(defaults), len(withDefaults); m != n+1 {
		t.Fatalf("istioWaypointDefaults.enabled=true renders %d objects, the defaults %d: want one more", m, n)
	}
	cm := findObject(withDefaults, "ConfigMap", "waypoint-controller-istio-waypoint-defaults")
	if cm == nil || cm.GetNamespace() != "istio-system" || cm.GetLabels()[classDefaultsLabel] != "istio-waypoint" {
		t.Fatalf("istioWaypointDefaults.enabled=true renders no class-defaults ConfigMap in istio-system: %v", cm)
	}
	others, err := env.cluster.Client.CoreV1().ConfigMaps("istio-system").List(ctx, metav1.ListOptions{LabelSelector: classDefaultsLabel + "=istio-waypoint"})
	if err != nil {
		t.Fatal(err)
	}
	if len(others.Items) > 0 {
		t.Fatalf("ConfigMap istio-system/%s holds class defaults for istio-waypoint already (a test left it?): istiod would use the oldest", others.Items[0].Name)
	}
	deploymentImage := func() (string, error) {
		d, err := env.cluster.Client.AppsV1().Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "istio-proxy" && len(c.Args) > 2 && c.Args[0] == "proxy" {
				return c.Image, nil
			}
		}
		return "", fmt.Errorf("no container istio-proxy running `proxy waypoint` in %v", d.Spec.Template.Spec.Containers)
	}
	before, err := deploymentImage()
	if err != nil {
		t.Fatal(err)
	}
	if before == waypointImage {
		t.Fatalf("the Deployment has the chart's image %s before the class defaults", before)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.cluster.Delete(ctx, objectsYAML(t, []*unstructured.Unstructured{cm})); err != nil {
			t.Fatal(err)
		}
		w.eventually(time.Minute, "istiod renders the Deployment without the class defaults again", func() error {
			img, err := deploymentImage()
			if err != nil {
				return err
			}
			if img != before {
				return fmt.Errorf("image %s, want %s again", img, before)
			}
			return nil
		})
		t.Logf("the class defaults deleted, istiod renders %s again", before)
	})
	applyChart(t, withDefaults)
	w.eventually(time.Minute, "istiod renders the Deployment with the class defaults' image", func() error {
		img, err := deploymentImage()
		if err != nil {
			return err
		}
		if img != waypointImage {
			return fmt.Errorf("image %s, want %s", img, waypointImage)
		}
		return nil
	})
	t.Logf("istiod renders the Deployment of Gateway %s/%s with %s under the class defaults (%s without)", w.ns, w.gateway, waypointImage, before)
}

// controllerRules are the ClusterRole's rules, as issue 14 lists what the controller needs.
var controllerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gateways", "gatewayclasses"},
		Verbs: []string{"get", "list", "watch", "create", "patch", "update"}},
	{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gateways/status", "gatewayclasses/status"},
		Verbs: []string{"get", "patch", "update"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts", "services"},
		Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"},
		Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
	{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"},
		Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
	{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"},
		Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
}

// testChartRender checks what `helm template` renders for sets of values, and that bad values
// are refused with a message naming them.
func testChartRender(t *testing.T, meta chartMeta) {
	kinds := func(objs []*unstructured.Unstructured) []string {
		var k []string
		for _, o := range objs {
			k = append(k, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
		}
		slices.Sort(k)
		return k
	}
	base := []string{
		"ClusterRole /waypoint-controller", "ClusterRoleBinding /waypoint-controller",
		"Deployment istio-system/waypoint-controller", "GatewayClass /istio-mesh",
		"ServiceAccount istio-system/waypoint-controller",
	}
	for _, tc := range []struct {
		name      string
		set       []string
		objects   []string
		args      []string // the controller's arguments
		cmImage   string   // the class defaults' image, when they are on
		cmNS      string
		className string
	}{
		{name: "defaults", objects: base,
			args: []string{"--image=localhost/waypoint:" + meta.AppVersion, "--istiod-address=istiod.istio-system.svc:15012",
				"--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"},
			className: meta.Values.GatewayClass.ControllerName},
		{name: "replicas", set: []string{"replicas=3"}, objects: base,
			args: []string{"--image=localhost/waypoint:" + meta.AppVersion, "--istiod-address=istiod.istio-system.svc:15012",
				"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"},
			className: meta.Values.GatewayClass.ControllerName},
		{name: "no class", set: []string{"gatewayClass.create=false", "waypointImage.repository=r.example/wp", "waypointImage.tag=t1",
			"istiodAddress=[fd00::1]:15012", "extraArgs[0]=--zap-log-level=debug"},
			objects: slices.DeleteFunc(slices.Clone(base), func(s string) bool { return strings.HasPrefix(s, "GatewayClass") }),
			args: []string{"--image=r.example/wp:t1", "--istiod-address=[fd00::1]:15012",
				"--health-probe-bind-address=:8081", "--metrics-bind-address=:8080", "--zap-log-level=debug"}},
		{name: "class defaults", set: []string{"istioWaypointDefaults.enabled=true", "istioNamespace=mesh-root", "waypointImage.tag=v9",
			"gatewayClass.controllerName=example.net/waypoints"},
			objects: slices.Sorted(slices.Values(append(slices.Clone(base), "ConfigMap mesh-root/waypoint-controller-istio-waypoint-defaults"))),
			args: []string{"--image=localhost/waypoint:v9", "--istiod-address=istiod.istio-system.svc:15012",
				"--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"},
			cmImage: "localhost/waypoint:v9", cmNS: "mesh-root", className: "example.net/waypoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			objs := renderChart(t, args...)
			if got := kinds(objs); !slices.Equal(got, tc.objects) {
				t.Errorf("objects %q, want %q", got, tc.objects)
			}
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(findObject(objs, "Deployment", "waypoint-controller").Object, &d); err != nil {
				t.Fatal(err)
			}
			if got := d.Spec.Template.Spec.Containers[0].Args; !slices.Equal(got, tc.args) {
				t.Errorf("args %q, want %q", got, tc.args)
			}
			if gc := findObject(objs, "GatewayClass", "istio-mesh"); gc != nil {
				if got, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); got != tc.className {
					t.Errorf("controllerName %q, want %q", got, tc.className)
				}
			}
			if tc.cmImage == "" {
				return
			}
			cm := findObject(objs, "ConfigMap", "waypoint-controller-istio-waypoint-defaults")
			var overlay appsv1.Deployment
			data, _, _ := unstructured.NestedString(cm.Object, "data", "deployment")
			if err := yaml.UnmarshalStrict([]byte(data), &overlay); err != nil {
				t.Fatalf("the class defaults' deployment: %v\n%s", err, data)
			}
			want := []corev1.Container{{Name: "istio-proxy", Image: tc.cmImage}}
			if cm.GetNamespace() != tc.cmNS || !reflect.DeepEqual(overlay.Spec.Template.Spec.Containers, want) {
				t.Errorf("class defaults in %q: containers %+v, want %+v in %q", cm.GetNamespace(), overlay.Spec.Template.Spec.Containers, want, tc.cmNS)
			}
		})
	}
	for _, tc := range []struct{ set, wantErr string }{
		{"replicas=-1", "replicas"},
		{"istiodAddress=istiod", "istiodAddress"},
		{"istiodAddress=fd00::1:15012", "istiodAddress"},
		{"gatewayClass.controllerName=no-path", "controllerName"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"imagetag=1", "imagetag"},
	} {
		t.Run("refuses "+tc.set, func(t *testing.T) {
			out, err := helmCommand(t, "template", "waypoint-controller", chartDir, "-n", "istio-system", "--set", tc.set).CombinedOutput()
			if err == nil {
				t.Fatalf("helm template --set %s: no error\n%s", tc.set, out)
			}
			if !strings.Contains(string(out), tc.wantErr) {
				t.Errorf("helm template --set %s: %v, the message names no %q:\n%s", tc.set, err, tc.wantErr, out)
			}
		})
	}
}

// checkControllerDeployment checks the controller's Deployment (one replica) as the API server
// holds it.
func checkControllerDeployment(t *testing.T, d *appsv1.Deployment, meta chartMeta) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers %+v", pod.Containers)
	}
	c := pod.Containers[0]
	if want := meta.Values.Image.Repository + ":" + meta.AppVersion; c.Image != want {
		t.Errorf("image %s, want %s", c.Image, want)
	}
	if slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %q: --leader-elect with one replica", c.Args)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 1337 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("securityContext %+v", sc)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe %+v, want GET %s on port health", what, p, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(ports, map[string]int32{"metrics": 8080, "health": 8081}) {
		t.Errorf("ports %v", ports)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if pod.ServiceAccountName != "waypoint-controller" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
}

// chartMeta is what the test reads of the chart's Chart.yaml and values.yaml.
type chartMeta struct {
	AppVersion string
	Values     struct {
		Image, WaypointImage struct{ Repository string }
		GatewayClass         struct{ ControllerName string }
	}
}

func readChartMeta(t *testing.T) chartMeta {
	t.Helper()
	var m chartMeta
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	for file, v := range map[string]any{"Chart.yaml": &chart, "values.yaml": &m.Values} {
		b, err := os.ReadFile(filepath.Join(chartDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	m.AppVersion = chart.AppVersion
	if m.AppVersion == "" || m.Values.WaypointImage.Repository == "" || m.Values.Image.Repository == "" || m.Values.GatewayClass.ControllerName == "" {
		t.Fatalf("the chart's appVersion or values are incomplete: %+v", m)
	}
	return m
}

// helmCommand is the built helm with args, its configuration, cache and data in a directory
// of the test's (no user's repositories or plugins) and no cluster to reach.
func helmCommand(t *testing.T, args ...string) *exec.Cmd {
	home := t.TempDir()
	cmd := exec.Command(env.bins.Helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"), "KUBECONFIG="+filepath.Join(home, "no-cluster"))
	return cmd
}

// renderChart renders the chart as `helm install waypoint-controller charts/waypoint-controller
// -n istio-system` would install it, with more arguments of `helm template`.
func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	cmd := helmCommand(t, append([]string{"template", "waypoint-controller", chartDir, "-n", "istio-system"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %q: %v\n%s", args, err, stderr.Bytes())
	}
	objs, err := cluster.ParseYAML(out)
	if err != nil {
		t.Fatalf("helm template %q: %v\n%s", args, err, out)
	}
	return objs
}

// applyChart applies every object with server-side apply; the test's cleanup deletes them.
func applyChart(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := objectsYAML(t, objs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.cluster.Delete(ctx, text); err != nil {
			t.Error(err)
		}
	})
	for _, o := range objs {
		if err := env.cluster.ApplyObject(ctx, o.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
}

func findObject(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func objectsYAML(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "---\n")
}

func yamlOf(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

package live

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// The controller's names, as kube/controller has them.
const (
	meshClass          = "istio-mesh"
	meshControllerName = "waypoint.gowaypoint.io/controller"
	meshManagedLabel   = "waypoint.gowaypoint.io-controller" // gateway.istio.io/managed of its objects
	meshFieldManager   = "waypoint-controller"
)

// TestIstioMeshController is mode B of issue 14: cmd/waypoint-controller, run against the API
// server as a ServiceAccount bound to a ClusterRole of exactly the rules docs/controller.md lists,
// creates the GatewayClass istio-mesh and marks it Accepted; a Gateway of that class gets its
// ServiceAccount, Deployment and Service, owned by it and applied by the controller's field
// manager, whose waypoint container is the one istiod renders for the world's Gateway of class
// istio-waypoint but for the image and names; the Gateway is Programmed with the Service's cluster
// IP and hostname once the Deployment has a ready pod; istiod lists the Gateway as the waypoint of
// a Service labelled istio.io/use-waypoint; the rendered pod, run as in TestPodModeUnderIstiod,
// serves traffic under an AuthorizationPolicy; a restarted controller changes nothing; an edited
// Deployment is put back and a deleted one made again; a Service it did not make is left alone
// (the Gateway not Programmed); a parametersRef's HPA and PDB overlays are applied, and deleted
// with their keys; a deleted class is made again; a deleted Gateway's objects keep their owner
// references (this control plane has no garbage collector to delete them).
func TestIstioMeshController(t *testing.T) {
	ctx := context.Background()
	if _, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", meshClass); err == nil {
		t.Fatalf("GatewayClass %s exists before the test (left by another test?): the controller would not create it", meshClass)
	}
	w := newWorldNoWaypoint(t, 6, "meshclass", nil)
	// The world's Gateway "waypoint" is istiod's (istio-waypoint); ours is mesh-waypoint, and the
	// world's helpers (startPodWaypoint) go by w.gateway.
	istiodGateway := w.gateway
	w.gateway = "mesh-waypoint"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		env.cluster.Delete(ctx, "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: "+meshClass+"\n")
	})

	kubeconfig := controllerIdentity(t, w)
	const image = "localhost/gowaypoint/waypoint:mesh"
	ctl := startController(t, w, kubeconfig, image)

	// The class: created with our controller name, Accepted.
	w.eventually(time.Minute, "the controller creates the GatewayClass and accepts it", func() error {
		gc, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", meshClass)
		if err != nil {
			return err
		}
		if name, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); name != meshControllerName {
			return permanent(fmt.Errorf("controllerName %q, want %q", name, meshControllerName))
		}
		if !conditionTrue(gc, "Accepted") {
			return fmt.Errorf("status %v", gc.Object["status"])
		}
		return nil
	})

	w.apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: mesh-waypoint
  namespace: {{NS}}
  labels:
    istio.io/waypoint-for: service
spec:
  gatewayClassName: istio-mesh
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`)
	gw, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, w.gateway)
	if err != nil {
		t.Fatal(err)
	}
	gwUID := gw.GetUID()
	apps, core := env.cluster.Client.AppsV1(), env.cluster.Client.CoreV1()
	var dep *appsv1.Deployment
	var svc *corev1.Service
	var sa *corev1.ServiceAccount
	w.eventually(time.Minute, "the controller deploys the Gateway: ServiceAccount, Deployment, Service", func() (err error) {
		if sa, err = core.ServiceAccounts(w.ns).Get(ctx, w.gateway, metav1.GetOptions{}); err != nil {
			return err
		}
		if dep, err = apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{}); err != nil {
			return err
		}
		svc, err = core.Services(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		return err
	})

	t.Run("rendered", func(t *testing.T) {
		for _, o := range []metav1.Object{sa, dep, svc} {
			checkOwnedObject(t, o, gwUID)
		}
		c := proxyContainer(t, dep)
		if c.Image != image {
			t.Errorf("image %q, want %q", c.Image, image)
		}
		wantArgs := []string{"proxy", "waypoint", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--serviceCluster", "mesh-waypoint.$(POD_NAMESPACE)",
			"--proxyLogLevel", "warning", "--proxyComponentLogLevel", "misc:error", "--log_output_level", "default:info"}
		if !reflect.DeepEqual(c.Args, wantArgs) {
			t.Errorf("args %q, want %q", c.Args, wantArgs)
		}
		pod := dep.Spec.Template.Labels
		for k, v := range map[string]string{"gateway.istio.io/managed": "istio.io-mesh-controller", "istio.io/dataplane-mode": "none",
			"sidecar.istio.io/inject": "false", "gateway.networking.k8s.io/gateway-name": w.gateway, "istio.io/waypoint-for": "service"} {
			if pod[k] != v {
				t.Errorf("pod label %s=%q, want %q", k, pod[k], v)
			}
		}
		if svc.Labels["istio.io/waypoint-for"] != "service" {
			t.Errorf("Service labels %v: no istio.io/waypoint-for", svc.Labels)
		}
		var ports []string
		for _, p := range svc.Spec.Ports {
			ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, ptrOr(p.AppProtocol)))
		}
		if want := []string{"status-port/15021/tcp", "mesh/15008/hbone"}; !reflect.DeepEqual(ports, want) {
			t.Errorf("Service ports %v, want %v", ports, want)
		}
		// The container istiod renders for the world's Gateway of class istio-waypoint, from its own
		// template: the same but for the image and the names in it.
		theirs, err := apps.Deployments(w.ns).Get(ctx, istiodGateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		compareWithIstiod(t, dep, theirs)
	})

	// Not Programmed while the Deployment has no ready pod (istiod waits for an endpoint); then the
	// pod runs, and the stand-in for the Deployment controller reports it ready.
	w.eventually(30*time.Second, "the Gateway is Accepted, not yet Programmed", func() error {
		gw, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, w.gateway)
		if err != nil {
			return err
		}
		if !conditionTrue(gw, "Accepted") || conditionReason(gw, "Programmed") != "AddressNotAssigned" {
			return fmt.Errorf("status %v", gw.Object["status"])
		}
		if a, _, _ := unstructured.NestedSlice(gw.Object, "status", "addresses"); len(a) != 0 {
			return permanent(fmt.Errorf("addresses %v before a pod is ready", a))
		}
		return nil
	})
	p := w.startPodWaypoint()
	ready := "http://" + net.JoinHostPort(w.waypointIP, "15021") + "/healthz/ready"
	w.eventually(time.Minute, "the waypoint's readiness on 15021", func() error {
		if code := statusOf(ready); code != 200 {
			return fmt.Errorf("%d\n%s", code, tail(p.log, 20))
		}
		return nil
	})
	setDeploymentReady(t, w)
	clusterIP := svc.Spec.ClusterIP
	hostname := w.gateway + "." + w.ns + ".svc.cluster.local"
	w.eventually(30*time.Second, "the Gateway is Programmed with the Service's addresses", func() error {
		gw, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, w.gateway)
		if err != nil {
			return err
		}
		if !conditionTrue(gw, "Programmed") {
			return fmt.Errorf("status %v", gw.Object["status"])
		}
		got := gatewayAddresses(gw)
		if want := []string{"IPAddress=" + clusterIP, "Hostname=" + hostname}; !reflect.DeepEqual(got, want) {
			return permanent(fmt.Errorf("addresses %v, want %v", got, want))
		}
		ls, _, _ := unstructured.NestedSlice(gw.Object, "status", "listeners")
		if len(ls) != 1 {
			return permanent(fmt.Errorf("listeners %v", ls))
		}
		l := &unstructured.Unstructured{Object: map[string]any{"status": ls[0]}}
		for _, typ := range []string{"Accepted", "Programmed", "ResolvedRefs"} {
			if !conditionTrue(l, typ) {
				return permanent(fmt.Errorf("listener %v: %s not True", ls[0], typ))
			}
		}
		return nil
	})

	// istiod takes the Gateway as the waypoint of a Service that uses it, and the pod serves it.
	w.workload("reviews-v1", "bookinfo-reviews", map[string]string{"app": "reviews"}, 9080)
	w.apply(reviewsViewers("mesh-waypoint"))
	w.eventually(30*time.Second, "istiod's /debug/ambientz lists mesh-waypoint as the waypoint of reviews", func() error {
		wp, err := ambientWaypoint(ctx, w.ns, "reviews")
		if err != nil {
			return err
		}
		if !strings.Contains(wp, `"`+hostname+`"`) {
			return fmt.Errorf("reviews' waypoint %s, want %s", wp, hostname)
		}
		return nil
	})
	url := "http://" + w.serviceVIP("reviews") + ":9080/reviews/0"
	w.viewersOnly(url, "the controller's waypoint")
	w.synced()
	w.eventually(30*time.Second, "the controller's events on the Gateway", func() error {
		evs, err := env.cluster.Client.EventsV1().Events(w.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Gateway" && e.Regarding.Name == w.gateway && e.ReportingController == meshFieldManager && e.Related != nil {
				seen = append(seen, e.Reason+" "+e.Related.Kind)
			}
		}
		for _, want := range []string{"Created ServiceAccount", "Created Deployment", "Created Service"} {
			if !slices.Contains(seen, want) {
				return fmt.Errorf("events %q: no %q", seen, want)
			}
		}
		return nil
	})

	// A restarted controller reconciles every Gateway at start: server-side apply of the same
	// objects and the same status writes nothing.
	before := resourceVersions(t, w)
	ctl.stop(t)
	ctl = startController(t, w, kubeconfig, image)
	w.eventually(time.Minute, "the restarted controller reconciles the class and the Gateway", func() error {
		for _, c := range []string{"gateway", "gatewayclass"} {
			if n := ctl.metric(`controller_runtime_reconcile_total{controller="` + c + `",result="success"}`); n < 1 {
				return fmt.Errorf("%s: %v successful reconciles", c, n)
			}
		}
		return nil
	})
	if after := resourceVersions(t, w); !reflect.DeepEqual(before, after) {
		t.Errorf("resource versions changed by a reconcile with nothing new:\nbefore %v\nafter  %v", before, after)
	} else {
		t.Logf("resource versions unchanged across a restart of the controller: %v", after)
	}

	t.Run("edit-put-back", func(t *testing.T) {
		d, err := apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range d.Spec.Template.Spec.Containers {
			if d.Spec.Template.Spec.Containers[i].Name == "istio-proxy" {
				d.Spec.Template.Spec.Containers[i].Image = "localhost/someone-else:1"
			}
		}
		if _, err := apps.Deployments(w.ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the controller puts the image back", func() error {
			d, err := apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if c := proxyContainer(t, d); c.Image != image {
				return fmt.Errorf("image %q", c.Image)
			}
			return nil
		})
	})

	t.Run("delete-recreated", func(t *testing.T) {
		old, err := apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := apps.Deployments(w.ns).Delete(ctx, w.gateway, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the controller makes the Deployment again", func() error {
			d, err := apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.UID == old.UID {
				return fmt.Errorf("still the old Deployment")
			}
			checkOwnedObject(t, d, gwUID)
			return nil
		})
	})

	t.Run("not-ours-left-alone", func(t *testing.T) {
		// A Service of the Gateway's name that the controller did not make is not taken over: the
		// Gateway is not Programmed, and the Service keeps what its owner gave it.
		applyIn(t, w, `
apiVersion: v1
kind: Service
metadata:
  name: taken
  namespace: {{NS}}
  labels: {owner: someone-else}
spec:
  ports:
  - {name: http, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: taken
  namespace: {{NS}}
spec:
  gatewayClassName: istio-mesh
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
`)
		eventually(t, 30*time.Second, "the Gateway taken is not Programmed, naming the Service", func() error {
			gw, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, "taken")
			if err != nil {
				return err
			}
			if conditionReason(gw, "Programmed") != "Invalid" || !strings.Contains(conditionMessage(gw, "Programmed"), "Service meshclass/taken exists and is not managed") {
				return fmt.Errorf("status %v", gw.Object["status"])
			}
			return nil
		})
		s, err := core.Services(w.ns).Get(ctx, "taken", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Labels["gateway.istio.io/managed"]; ok || len(s.OwnerReferences) > 0 || len(s.Spec.Ports) != 1 {
			t.Errorf("the Service taken was changed: labels %v, owners %v, ports %v", s.Labels, s.OwnerReferences, s.Spec.Ports)
		}
		for _, f := range s.ManagedFields {
			if f.Manager == meshFieldManager {
				t.Errorf("the Service taken has fields of %s", meshFieldManager)
			}
		}
	})

	t.Run("overlays", func(t *testing.T) {
		// A parametersRef ConfigMap with HPA and PDB overlays: both are applied (the API server
		// takes what the controller renders), and deleted once the overlay loses their keys.
		const params = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: scaled-params
  namespace: {{NS}}
data:
  deployment: |
    spec:
      template:
        spec:
          containers:
          - name: istio-proxy
            resources:
              limits: {memory: 2Gi}
  horizontalPodAutoscaler: |
    spec:
      minReplicas: 2
      maxReplicas: 4
  podDisruptionBudget: |
    spec:
      minAvailable: 1
`
		applyIn(t, w, params+`---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: scaled
  namespace: {{NS}}
spec:
  gatewayClassName: istio-mesh
  infrastructure:
    parametersRef: {group: "", kind: ConfigMap, name: scaled-params}
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
`)
		eventually(t, 30*time.Second, "the HPA and PDB of the overlays", func() error {
			hpa, err := env.cluster.Client.AutoscalingV2().HorizontalPodAutoscalers(w.ns).Get(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if hpa.Spec.MaxReplicas != 4 || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.ScaleTargetRef.Name != "scaled" {
				return permanent(fmt.Errorf("HPA spec %+v", hpa.Spec))
			}
			pdb, err := env.cluster.Client.PolicyV1().PodDisruptionBudgets(w.ns).Get(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
				return permanent(fmt.Errorf("PDB spec %+v", pdb.Spec))
			}
			d, err := apps.Deployments(w.ns).Get(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if m := proxyContainer(t, d).Resources.Limits.Memory().String(); m != "2Gi" {
				return permanent(fmt.Errorf("memory limit %s, want the overlay's 2Gi", m))
			}
			return nil
		})
		applyIn(t, w, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: scaled-params
  namespace: {{NS}}
data:
  deployment: "{}"
`) // the keys this apply leaves out are removed (the harness's field manager owned them)
		eventually(t, 30*time.Second, "the HPA and PDB deleted with their overlay", func() error {
			_, err1 := env.cluster.Client.AutoscalingV2().HorizontalPodAutoscalers(w.ns).Get(ctx, "scaled", metav1.GetOptions{})
			_, err2 := env.cluster.Client.PolicyV1().PodDisruptionBudgets(w.ns).Get(ctx, "scaled", metav1.GetOptions{})
			if !apierrors.IsNotFound(err1) || !apierrors.IsNotFound(err2) {
				cm, err := core.ConfigMaps(w.ns).Get(ctx, "scaled-params", metav1.GetOptions{})
				if err != nil {
					return err
				}
				return fmt.Errorf("HPA: %v, PDB: %v; the ConfigMap's data %v", err1, err2, cm.Data)
			}
			return nil
		})
	})

	t.Run("class-recreated", func(t *testing.T) {
		old, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", meshClass)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.cluster.Delete(ctx, "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: "+meshClass+"\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the controller creates the deleted GatewayClass again", func() error {
			gc, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", meshClass)
			if err != nil {
				return err
			}
			if gc.GetUID() == old.GetUID() || !conditionTrue(gc, "Accepted") {
				return fmt.Errorf("uid %s (the old one %s), status %v", gc.GetUID(), old.GetUID(), gc.Object["status"])
			}
			return nil
		})
	})

	t.Run("gateway-deleted", func(t *testing.T) {
		seen := ctl.metric(`controller_runtime_reconcile_total{controller="gateway",result="success"}`)
		if err := env.cluster.Delete(ctx, w.expand("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: mesh-waypoint\n  namespace: {{NS}}\n")); err != nil {
			t.Fatal(err)
		}
		// The controller sees the deletion (one more reconcile) and leaves the objects to the
		// garbage collector, which this control plane does not run: they stay, owned by the
		// Gateway that is gone.
		eventually(t, 30*time.Second, "the controller reconciles the deleted Gateway", func() error {
			if n := ctl.metric(`controller_runtime_reconcile_total{controller="gateway",result="success"}`); n <= seen {
				return fmt.Errorf("%v successful reconciles, %v before the deletion", n, seen)
			}
			return nil
		})
		if _, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, w.gateway); !apierrors.IsNotFound(err) {
			t.Fatalf("the Gateway is still there: %v", err)
		}
		sa, err := core.ServiceAccounts(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := apps.Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := core.Services(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []metav1.Object{sa, d, svc} {
			checkOwnedObject(t, o, gwUID)
		}
	})
}

// controllerIdentity makes the controller's ServiceAccount in the world's namespace, bound to a
// ClusterRole of the rules docs/controller.md lists (and the chart grants), and returns a
// kubeconfig with its token.
func controllerIdentity(t *testing.T, w *world) string {
	t.Helper()
	rbac := `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: meshclass-waypoint-controller
rules:
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, gatewayclasses]
  verbs: [get, list, watch, create, patch, update]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/status, gatewayclasses/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [serviceaccounts, services]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: meshclass-waypoint-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: meshclass-waypoint-controller
subjects:
- kind: ServiceAccount
  name: waypoint-controller
  namespace: {{NS}}
`
	w.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: waypoint-controller\n  namespace: {{NS}}\n---" + rbac)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		env.cluster.Delete(ctx, w.expand(rbac))
	})
	var tok string
	w.eventually(30*time.Second, "a token for the controller's ServiceAccount", func() (err error) {
		tok, err = env.cluster.ServiceAccountToken(context.Background(), w.ns, "waypoint-controller", "https://kubernetes.default.svc")
		return err
	})
	kc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "controller",
		"clusters": []any{map[string]any{"name": "local", "cluster": map[string]any{
			"server": env.cluster.APIServer, "certificate-authority-data": base64.StdEncoding.EncodeToString(env.cluster.Rest.TLSClientConfig.CAData)}}},
		"users":    []any{map[string]any{"name": "waypoint-controller", "user": map[string]any{"token": tok}}},
		"contexts": []any{map[string]any{"name": "controller", "context": map[string]any{"cluster": "local", "user": "waypoint-controller"}}},
	}
	b, err := yaml.Marshal(kc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.dir, "controller.kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// controllerProcess is a running waypoint-controller.
type controllerProcess struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	metrics string // its /metrics URL
}

// startController runs the controller on the world's .2 (metrics :8080, health :8081) with
// leader election, and waits until it is healthy.
func startController(t *testing.T, w *world, kubeconfig, image string) *controllerProcess {
	t.Helper()
	ip := w.net + ".2"
	logPath := filepath.Join(w.dir, fmt.Sprintf("waypoint-controller-%d.log", time.Now().UnixNano()))
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.controller, "--kubeconfig", kubeconfig, "--image", image, "--leader-elect",
		"--metrics-bind-address", net.JoinHostPort(ip, "8080"), "--health-probe-bind-address", net.JoinHostPort(ip, "8081"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")} // no KUBECONFIG, no POD_NAMESPACE
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &controllerProcess{cmd: cmd, done: make(chan struct{}), logPath: logPath, metrics: "http://" + net.JoinHostPort(ip, "8080") + "/metrics"}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		switch {
		case os.Getenv("LIVE_CONTROLLER_LOG") != "":
			t.Logf("--- waypoint-controller (%s):\n%s", logPath, tail(logPath, 100000))
		case t.Failed():
			t.Logf("--- waypoint-controller (%s), last lines:\n%s", logPath, tail(logPath, 40))
		}
	})
	w.eventually(30*time.Second, "the controller is ready", func() error {
		select {
		case <-p.done:
			return permanent(fmt.Errorf("the controller exited: %v\n%s", cmd.ProcessState, tail(logPath, 20)))
		default:
		}
		if code := statusOf("http://" + net.JoinHostPort(ip, "8081") + "/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d", code)
		}
		return nil
	})
	return p
}

// stop sends SIGTERM and waits for the exit (it releases its lease); SIGKILL after 10 s.
func (p *controllerProcess) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("waypoint-controller still running 10 s after SIGTERM\n%s", tail(p.logPath, 20))
	}
}

// metric is the value of the Prometheus sample line starting with series, 0 when there is none.
func (p *controllerProcess) metric(series string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(p.metrics)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// checkOwnedObject checks that o is the controller's: its managed label, its field manager's
// server-side apply, and the Gateway of uid its controller owner.
func checkOwnedObject(t *testing.T, o metav1.Object, gwUID types.UID) {
	t.Helper()
	kind := fmt.Sprintf("%T %s", o, o.GetName())
	if v := o.GetLabels()["gateway.istio.io/managed"]; v != meshManagedLabel {
		t.Errorf("%s: gateway.istio.io/managed %q, want %q", kind, v, meshManagedLabel)
	}
	refs := o.GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != "Gateway" || refs[0].Name != "mesh-waypoint" || refs[0].UID != gwUID ||
		refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("%s: owner references %+v, want the Gateway mesh-waypoint (uid %v) as controller", kind, refs, gwUID)
	}
	applied := false
	for _, f := range o.GetManagedFields() {
		if f.Manager == meshFieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			applied = true
		}
	}
	if !applied {
		t.Errorf("%s: no server-side apply by %s in its managed fields", kind, meshFieldManager)
	}
}

func proxyContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "istio-proxy" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container istio-proxy", d.Name)
	return nil
}

// compareWithIstiod compares the pod template of our Deployment with istiod's for its Gateway of
// class istio-waypoint: equal once the image and the names (the Gateway's, its class's, in the
// labels, the service account, --serviceCluster and the workload's metadata) are set aside.
func compareWithIstiod(t *testing.T, ours, theirs *appsv1.Deployment) {
	t.Helper()
	norm := func(d *appsv1.Deployment) string {
		tpl := d.Spec.Template.DeepCopy()
		for _, k := range []string{"gateway.networking.k8s.io/gateway-name", "gateway.networking.k8s.io/gateway-class-name", "service.istio.io/canonical-name"} {
			if _, ok := tpl.Labels[k]; ok {
				tpl.Labels[k] = "NAME"
			}
		}
		tpl.Spec.ServiceAccountName, tpl.Spec.DeprecatedServiceAccount = "NAME", "NAME"
		for i := range tpl.Spec.Containers {
			c := &tpl.Spec.Containers[i]
			c.Image = "IMAGE"
			for j := range c.Args {
				if j > 0 && c.Args[j-1] == "--serviceCluster" {
					c.Args[j] = "NAME.$(POD_NAMESPACE)"
				}
			}
			for j := range c.Env {
				switch c.Env[j].Name {
				case "ISTIO_META_WORKLOAD_NAME", "ISTIO_META_OWNER":
					c.Env[j].Value = strings.ReplaceAll(c.Env[j].Value, d.Name, "NAME")
				}
			}
		}
		b, err := json.Marshal(tpl)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a, b := norm(ours), norm(theirs)
	if a != b {
		var x, y map[string]any
		json.Unmarshal([]byte(a), &x)
		json.Unmarshal([]byte(b), &y)
		xa, _ := yaml.Marshal(x)
		ya, _ := yaml.Marshal(y)
		t.Errorf("our pod template differs from istiod's (names and image set aside):\n--- ours\n%s\n--- istiod's\n%s", xa, ya)
	} else {
		t.Logf("our pod template is istiod's for istio-waypoint but for the image and the names (%d bytes of JSON compared)", len(a))
	}
}

// setDeploymentReady writes what the Deployment controller would once the pod is ready (this
// control plane runs no controller-manager): one replica, ready and available.
func setDeploymentReady(t *testing.T, w *world) {
	t.Helper()
	ctx := context.Background()
	apps := env.cluster.Client.AppsV1().Deployments(w.ns)
	w.eventually(30*time.Second, "the Deployment's status says one ready pod", func() error {
		d, err := apps.Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		_, err = apps.UpdateStatus(ctx, d, metav1.UpdateOptions{FieldManager: "deployment-controller-stand-in"})
		return err
	})
}

// conditionReason is the reason of o's status condition typ.
func conditionReason(o *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == typ {
			r, _ := m["reason"].(string)
			return r
		}
	}
	return ""
}

// conditionMessage is the message of o's status condition typ.
func conditionMessage(o *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == typ {
			r, _ := m["message"].(string)
			return r
		}
	}
	return ""
}

// applyIn applies text ({{NS}} expanded) for a subtest, failing the subtest.
func applyIn(t *testing.T, w *world, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.cluster.Apply(ctx, w.expand(text)); err != nil {
		t.Fatal(err)
	}
}

// gatewayAddresses are a Gateway's status addresses as TYPE=VALUE.
func gatewayAddresses(gw *unstructured.Unstructured) []string {
	as, _, _ := unstructured.NestedSlice(gw.Object, "status", "addresses")
	var out []string
	for _, a := range as {
		m, _ := a.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v", m["type"], m["value"]))
	}
	return out
}

// ambientWaypoint is the waypoint istiod's /debug/ambientz gives Service ns/name, as JSON.
func ambientWaypoint(ctx context.Context, ns, name string) (string, error) {
	raw, err := env.cluster.AmbientZ(ctx)
	if err != nil {
		return "", err
	}
	var z struct {
		Services []struct {
			Name      string          `json:"name"`
			Namespace string          `json:"namespace"`
			Waypoint  json.RawMessage `json:"waypoint"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &z); err != nil {
		return "", err
	}
	for _, s := range z.Services {
		if s.Name == name && s.Namespace == ns {
			if len(s.Waypoint) == 0 {
				return "", fmt.Errorf("service %s/%s has no waypoint yet", ns, name)
			}
			return string(s.Waypoint), nil
		}
	}
	return "", fmt.Errorf("service %s/%s not in ambientz", ns, name)
}

// resourceVersions are the resource versions (and the Deployment's generation) of the world's
// Gateway and the objects the controller applied for it.
func resourceVersions(t *testing.T, w *world) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	gw, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "Gateway", w.ns, w.gateway)
	if err != nil {
		t.Fatal(err)
	}
	out["Gateway"] = gw.GetResourceVersion()
	sa, err := env.cluster.Client.CoreV1().ServiceAccounts(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["ServiceAccount"] = sa.ResourceVersion
	d, err := env.cluster.Client.AppsV1().Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["Deployment"] = d.ResourceVersion
	out["Deployment.generation"] = strconv.FormatInt(d.Generation, 10)
	svc, err := env.cluster.Client.CoreV1().Services(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["Service"] = svc.ResourceVersion
	gc, err := env.cluster.Get(ctx, "gateway.networking.k8s.io/v1", "GatewayClass", "", meshClass)
	if err != nil {
		t.Fatal(err)
	}
	out["GatewayClass"] = gc.GetResourceVersion()
	return out
}

func ptrOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

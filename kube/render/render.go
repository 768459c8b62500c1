// Package render turns a waypoint Gateway into the objects that run it:
// the ServiceAccount, Deployment and Service (and a HorizontalPodAutoscaler
// and PodDisruptionBudget when an overlay asks for them) that istiod's
// deployment controller renders for a Gateway of class istio-waypoint from
// the template files/waypoint.yaml of its istio-discovery chart, with the
// values of the chart's ambient profile, overlaid by the class-defaults
// ConfigMap and the Gateway's parametersRef ConfigMap as istiod overlays
// them. It is pure: no client, no clock; kube/controller applies what it
// renders.
//
// Where the output differs from istiod's (each is a choice, written down in
// docs/controller.md):
//   - every owner reference has controller: true (istiod sets none), so that
//     the controller's watches map an owned object back to its Gateway;
//   - the objects' label gateway.istio.io/managed is Options.ControllerName
//     with "/" turned into "-" (istiod's rule), not istio.io-mesh-controller,
//     while the pod template's keeps istio.io-mesh-controller: istiod tells a
//     waypoint's pods and endpoints by that value (its ambient index, EDS's
//     HBONE choice, model.IsWaypointProxy);
//   - the class name may lack "waypoint" without istiod's non-waypoint label
//     istio.io/dataplane-mode: none being added to the infrastructure labels
//     (the pod has it anyway).
package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Labels and annotations the rendering reads or writes.
const (
	LabelGatewayName      = "gateway.networking.k8s.io/gateway-name"
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"
	// LabelManaged marks the objects a gateway controller manages; istiod
	// takes over an existing object only when it carries it.
	LabelManaged = "gateway.istio.io/managed"
	// LabelDefaultsForClass marks a ConfigMap in the system namespace as the
	// overlays of every Gateway of the class it names.
	LabelDefaultsForClass = "gateway.istio.io/defaults-for-class"
	// LabelWaypointFor is the traffic a waypoint takes (service, workload,
	// all, none); passed through to the objects' labels and the pod's.
	LabelWaypointFor     = "istio.io/waypoint-for"
	LabelTopologyNetwork = "topology.istio.io/network"

	AnnotationProxyImage        = "sidecar.istio.io/proxyImage"
	AnnotationLogLevel          = "sidecar.istio.io/logLevel"
	AnnotationComponentLogLevel = "sidecar.istio.io/componentLogLevel"
	AnnotationAgentLogLevel     = "sidecar.istio.io/agentLogLevel"
	AnnotationNameOverride      = "gateway.istio.io/name-override"
	AnnotationServiceAccount    = "gateway.istio.io/service-account"
	AnnotationServiceType       = "networking.istio.io/service-type"

	// WaypointPodManaged is the pod label value by which istiod knows a
	// waypoint's pods (constants.ManagedGatewayMeshControllerLabel).
	WaypointPodManaged = "istio.io-mesh-controller"
)

// Defaults of Options, those of istiod and its chart's ambient profile.
const (
	DefaultIstiodAddress     = "istiod.istio-system.svc:15012"
	DefaultTrustDomain       = "cluster.local"
	DefaultClusterID         = "Kubernetes"
	DefaultClusterDomain     = "cluster.local"
	DefaultProxyLogLevel     = "warning"
	DefaultComponentLogLevel = "misc:error"
	DefaultAgentLogLevel     = "default:info"
)

// omittedAnnotations are the Gateway's annotations not copied onto the
// objects (the template's omit list).
var omittedAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	AnnotationNameOverride,
	AnnotationServiceAccount,
	"gateway.istio.io/controller-version",
}

// DefaultResources are the istio-proxy container's resources when
// Options.Resources is nil: the chart's global.waypoint.resources.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
}

// Options are the controller-wide inputs, the counterpart of istiod's
// injector values and mesh config. Zero fields take the defaults above.
type Options struct {
	// ControllerName is the GatewayClass controller the objects are
	// rendered for; the objects' gateway.istio.io/managed label is it with
	// "/" turned into "-". Required.
	ControllerName string
	// Image is the container's image when the Gateway's
	// sidecar.istio.io/proxyImage annotation has no "/". Required.
	Image string
	// IstiodAddress is istiod's xDS and CA address: CA_ADDR, and
	// PROXY_CONFIG's discoveryAddress when it is not
	// DefaultIstiodAddress (istiod renders only the fields that differ from
	// the mesh's defaults).
	IstiodAddress string
	// TrustDomain is TRUST_DOMAIN, and ISTIO_META_MESH_ID when MeshID is
	// empty.
	TrustDomain string
	MeshID      string
	// ClusterID is ISTIO_META_CLUSTER_ID.
	ClusterID string
	// ClusterDomain makes --domain $(POD_NAMESPACE).svc.<ClusterDomain>.
	ClusterDomain string
	// Network is ISTIO_META_NETWORK and the topology.istio.io/network
	// label, unless the Gateway has that label; none when empty.
	Network string
	// Revision is the pod's istio.io/rev annotation; "default" when empty.
	Revision string
	// ProxyLogLevel, ComponentLogLevel and AgentLogLevel are the
	// container's --proxyLogLevel, --proxyComponentLogLevel and
	// --log_output_level unless the Gateway's sidecar.istio.io/logLevel,
	// componentLogLevel or agentLogLevel annotation says otherwise.
	ProxyLogLevel     string
	ComponentLogLevel string
	AgentLogLevel     string
	// LogAsJSON adds --log_as_json.
	LogAsJSON bool
	// ImagePullPolicy is the container's; the API server's default when
	// empty.
	ImagePullPolicy corev1.PullPolicy
	// Resources are the container's; DefaultResources when nil, none when
	// empty.
	Resources *corev1.ResourceRequirements
}

func (o Options) withDefaults() (Options, error) {
	if o.ControllerName == "" {
		return o, errors.New("render: Options.ControllerName is required")
	}
	if o.Image == "" {
		return o, errors.New("render: Options.Image is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.IstiodAddress, DefaultIstiodAddress)
	def(&o.TrustDomain, DefaultTrustDomain)
	def(&o.MeshID, o.TrustDomain)
	def(&o.ClusterID, DefaultClusterID)
	def(&o.ClusterDomain, DefaultClusterDomain)
	def(&o.Revision, "default")
	def(&o.ProxyLogLevel, DefaultProxyLogLevel)
	def(&o.ComponentLogLevel, DefaultComponentLogLevel)
	def(&o.AgentLogLevel, DefaultAgentLogLevel)
	if o.Resources == nil {
		r := DefaultResources()
		o.Resources = &r
	}
	return o, nil
}

// ManagedLabelValue is the gateway.istio.io/managed value of the objects
// of a controller: its name with "/" turned into "-", as istiod makes
// istio.io-mesh-controller of istio.io/mesh-controller.
func ManagedLabelValue(controllerName string) string {
	return strings.ReplaceAll(controllerName, "/", "-")
}

// Input is one Gateway and the ConfigMaps overlaid on its objects.
type Input struct {
	Gateway *gwv1.Gateway
	// ClassDefaults are the ConfigMaps of the system namespace labelled
	// gateway.istio.io/defaults-for-class: <the Gateway's class>; the
	// oldest is used (istiod's rule), the others ignored.
	ClassDefaults []corev1.ConfigMap
	// Parameters is the ConfigMap the Gateway's parametersRef names, nil
	// when it names none (ParametersRef). Overlaid after the class's.
	Parameters *corev1.ConfigMap
}

// Names are the names of a Gateway's objects.
type Names struct {
	Deployment     string // also the Service's, the HPA's and the PDB's
	ServiceAccount string
}

// NamesOf are gw's objects' names: the Gateway's name, or its
// gateway.istio.io/name-override and gateway.istio.io/service-account
// annotations.
func NamesOf(gw *gwv1.Gateway) Names {
	n := Names{Deployment: gw.Name, ServiceAccount: gw.Name}
	if v := gw.Annotations[AnnotationNameOverride]; v != "" {
		n.Deployment = v
	}
	if v := gw.Annotations[AnnotationServiceAccount]; v != "" {
		n.ServiceAccount = v
	}
	return n
}

// ParametersRef is the name of the ConfigMap in gw's namespace that its
// spec.infrastructure.parametersRef names; "" when it names none, an error
// when it names anything but a core ConfigMap.
func ParametersRef(gw *gwv1.Gateway) (string, error) {
	if gw.Spec.Infrastructure == nil || gw.Spec.Infrastructure.ParametersRef == nil {
		return "", nil
	}
	pr := gw.Spec.Infrastructure.ParametersRef
	if pr.Group != "" || pr.Kind != "ConfigMap" {
		return "", fmt.Errorf("parametersRef %s/%s %q: only a ConfigMap (group \"\") is supported", pr.Group, pr.Kind, pr.Name)
	}
	return pr.Name, nil
}

// Managed reports whether the controller deploys gw: not when its
// spec.addresses name an existing deployment (a Hostname, or more than one
// address), istiod's rule.
func Managed(gw *gwv1.Gateway) bool {
	a := gw.Spec.Addresses
	switch {
	case len(a) == 0:
		return true
	case len(a) > 1:
		return false
	default:
		return a[0].Type == nil || *a[0].Type == gwv1.IPAddressType
	}
}

// Render renders in's Gateway: the ServiceAccount, the Deployment, the
// Service, then the HorizontalPodAutoscaler and the PodDisruptionBudget
// when an overlay has their key, in that order. An overlay ConfigMap with
// a key other than deployment, service, serviceAccount,
// horizontalPodAutoscaler and podDisruptionBudget, an overlay that is not
// YAML or that changes an object's name, namespace or owner references is
// an error naming the ConfigMap.
func Render(in Input, o Options) ([]*unstructured.Unstructured, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	gw := in.Gateway
	if gw == nil {
		return nil, errors.New("render: no Gateway")
	}
	if gw.Name == "" || gw.Namespace == "" || gw.UID == "" {
		return nil, fmt.Errorf("render: Gateway %s/%s has no name, namespace or uid", gw.Namespace, gw.Name)
	}
	if in.Parameters != nil && in.Parameters.Namespace != gw.Namespace {
		return nil, fmt.Errorf("render: parameters ConfigMap %s/%s is not in the Gateway's namespace", in.Parameters.Namespace, in.Parameters.Name)
	}
	var overlays []overlaySource
	if cm := oldest(in.ClassDefaults); cm != nil {
		overlays = append(overlays, overlaySource{name: "ConfigMap " + cm.Namespace + "/" + cm.Name, data: cm.Data})
	}
	if cm := in.Parameters; cm != nil {
		overlays = append(overlays, overlaySource{name: "ConfigMap " + cm.Namespace + "/" + cm.Name, data: cm.Data})
	}
	for _, ov := range overlays {
		for k := range ov.data {
			if _, ok := overlayKinds[k]; !ok {
				return nil, fmt.Errorf("%s: unsupported overlay %q (supported: %s)", ov.name, k, strings.Join(overlayKeys(), ", "))
			}
		}
	}

	t := newTemplate(gw, o)
	rendered := []obj{t.serviceAccount(), t.deployment(), t.service(), t.hpa(), t.pdb()}
	managed := ManagedLabelValue(o.ControllerName)
	var out []*unstructured.Unstructured
	for _, r := range rendered {
		m, keep, err := applyOverlays(r, overlays)
		if err != nil {
			return nil, err
		}
		if !keep {
			continue
		}
		u, err := toUnstructured(m)
		if err != nil {
			return nil, err
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelManaged] = managed // after the overlays, as istiod's apply sets it
		u.SetLabels(labels)
		out = append(out, u)
	}
	return out, nil
}

// oldest is the ConfigMap created first (ties: the smaller name, then
// namespace), istiod's controllers.OldestObject.
func oldest(cms []corev1.ConfigMap) *corev1.ConfigMap {
	if len(cms) == 0 {
		return nil
	}
	best := &cms[0]
	for i := 1; i < len(cms); i++ {
		c := &cms[i]
		switch {
		case c.CreationTimestamp.Before(&best.CreationTimestamp):
			best = c
		case !c.CreationTimestamp.Equal(&best.CreationTimestamp):
		case c.Name < best.Name, c.Name == best.Name && c.Namespace < best.Namespace:
			best = c
		}
	}
	return best
}

// obj is one rendered object, JSON-shaped, with its overlay key and
// whether it exists only when an overlay has that key.
type obj struct {
	key      string
	m        map[string]any
	optional bool
}

// toUnstructured converts m through JSON so that its numbers are int64 or
// float64 as unstructured wants them.
func toUnstructured(m map[string]any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return u, nil
}

// template holds what every object of one Gateway is rendered from (the
// TemplateInput and derived values of istiod's controller).
type template struct {
	gw          *gwv1.Gateway
	o           Options
	names       Names
	class       string
	infraLabels map[string]string
	infraAnnots map[string]string
}

func newTemplate(gw *gwv1.Gateway, o Options) *template {
	t := &template{gw: gw, o: o, names: NamesOf(gw), class: string(gw.Spec.GatewayClassName)}
	t.infraLabels, t.infraAnnots = infrastructureMetadata(gw)
	if _, ok := gw.Labels[LabelTopologyNetwork]; !ok && o.Network != "" {
		t.infraLabels[LabelTopologyNetwork] = o.Network
	}
	return t
}

// infrastructureMetadata are the labels and annotations copied onto the
// objects: spec.infrastructure's (less the gateway.networking.k8s.io/
// prefix) when set, else the Gateway's own.
func infrastructureMetadata(gw *gwv1.Gateway) (labels, annotations map[string]string) {
	labels, annotations = map[string]string{}, map[string]string{}
	inf := gw.Spec.Infrastructure
	if inf != nil && inf.Labels != nil {
		for k, v := range inf.Labels {
			if !strings.HasPrefix(string(k), "gateway.networking.k8s.io/") {
				labels[string(k)] = string(v)
			}
		}
	} else {
		for k, v := range gw.Labels {
			labels[k] = v
		}
	}
	if inf != nil && inf.Annotations != nil {
		for k, v := range inf.Annotations {
			if !strings.HasPrefix(string(k), "gateway.networking.k8s.io/") {
				annotations[string(k)] = string(v)
			}
		}
	} else {
		for k, v := range gw.Annotations {
			annotations[k] = v
		}
	}
	return labels, annotations
}

// merge merges string maps, later ones winning (the template's toJsonMap),
// as a JSON-shaped map.
func merge(ms ...map[string]string) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func omit(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

// annotation is the Gateway's annotation name, or def.
func (t *template) annotation(name, def string) string {
	if v, ok := t.gw.Annotations[name]; ok {
		return v
	}
	return def
}

func (t *template) ownerRefs() []any {
	return []any{map[string]any{
		"apiVersion": gwv1.GroupVersion.String(),
		"kind":       "Gateway",
		"name":       t.gw.Name,
		"uid":        string(t.gw.UID),
		"controller": true,
	}}
}

func (t *template) meta(name string, labels map[string]any, annotations map[string]any) map[string]any {
	return map[string]any{
		"name":            name,
		"namespace":       t.gw.Namespace,
		"labels":          labels,
		"annotations":     annotations,
		"ownerReferences": t.ownerRefs(),
	}
}

func (t *template) objectLabels() map[string]any {
	return merge(t.infraLabels, map[string]string{LabelGatewayName: t.gw.Name, LabelGatewayClassName: t.class})
}

func (t *template) objectAnnotations() map[string]any {
	return merge(omit(t.infraAnnots, omittedAnnotations...))
}

func (t *template) serviceAccount() obj {
	return obj{key: "serviceAccount", m: map[string]any{
		"apiVersion": "v1",
		"kind":       "ServiceAccount",
		"metadata":   t.meta(t.names.ServiceAccount, t.objectLabels(), t.objectAnnotations()),
	}}
}

// Image is the container's image: the Gateway's sidecar.istio.io/proxyImage
// annotation when it contains a "/", else def.
func Image(gw *gwv1.Gateway, def string) string {
	if v := gw.Annotations[AnnotationProxyImage]; strings.Contains(v, "/") {
		return v
	}
	return def
}

func (t *template) deployment() obj {
	o := t.o
	podLabels := merge(
		map[string]string{
			"sidecar.istio.io/inject":             "false",
			"istio.io/dataplane-mode":             "none",
			"service.istio.io/canonical-name":     t.names.Deployment,
			"service.istio.io/canonical-revision": "latest",
		},
		t.infraLabels,
		map[string]string{LabelGatewayName: t.gw.Name, LabelGatewayClassName: t.class, LabelManaged: WaypointPodManaged},
	)
	podAnnotations := merge(
		omit(t.infraAnnots, omittedAnnotations...),
		map[string]string{"istio.io/rev": o.Revision},
		map[string]string{"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true"},
	)
	args := []any{
		"proxy", "waypoint",
		"--domain", "$(POD_NAMESPACE).svc." + o.ClusterDomain,
		"--serviceCluster", t.names.ServiceAccount + ".$(POD_NAMESPACE)",
		"--proxyLogLevel", t.annotation(AnnotationLogLevel, o.ProxyLogLevel),
		"--proxyComponentLogLevel", t.annotation(AnnotationComponentLogLevel, o.ComponentLogLevel),
		"--log_output_level", t.annotation(AnnotationAgentLogLevel, o.AgentLogLevel),
	}
	if o.LogAsJSON {
		args = append(args, "--log_as_json")
	}
	field := func(name, path string) any {
		return map[string]any{"name": name, "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": path}}}
	}
	res := func(name, r string) any {
		return map[string]any{"name": name, "valueFrom": map[string]any{"resourceFieldRef": map[string]any{"resource": r, "divisor": "1"}}}
	}
	val := func(name, v string) any { return map[string]any{"name": name, "value": v} }
	proxyConfig := "{}\n"
	if o.IstiodAddress != DefaultIstiodAddress {
		b, _ := json.Marshal(map[string]string{"discoveryAddress": o.IstiodAddress})
		proxyConfig = string(b) + "\n"
	}
	env := []any{
		field("ISTIO_META_SERVICE_ACCOUNT", "spec.serviceAccountName"),
		field("ISTIO_META_NODE_NAME", "spec.nodeName"),
		val("PILOT_CERT_PROVIDER", "istiod"),
		val("CA_ADDR", o.IstiodAddress),
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		field("HOST_IP", "status.hostIP"),
		res("ISTIO_CPU_LIMIT", "limits.cpu"),
		val("PROXY_CONFIG", proxyConfig),
		res("GOMEMLIMIT", "limits.memory"),
		res("GOMAXPROCS", "limits.cpu"),
		val("ISTIO_META_CLUSTER_ID", o.ClusterID),
	}
	network := o.Network
	if v, ok := t.infraLabels[LabelTopologyNetwork]; ok {
		network = v
	}
	if network != "" {
		env = append(env, val("ISTIO_META_NETWORK", network))
	}
	env = append(env,
		val("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"),
		val("ISTIO_META_WORKLOAD_NAME", t.names.Deployment),
		val("ISTIO_META_OWNER", "kubernetes://apis/apps/v1/namespaces/"+t.gw.Namespace+"/deployments/"+t.names.Deployment),
		val("ISTIO_META_MESH_ID", o.MeshID),
		val("TRUST_DOMAIN", o.TrustDomain),
	)
	probe := func(failures, delay, period int) map[string]any {
		return map[string]any{
			"failureThreshold":    failures,
			"httpGet":             map[string]any{"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
			"initialDelaySeconds": delay,
			"periodSeconds":       period,
			"successThreshold":    1,
			"timeoutSeconds":      1,
		}
	}
	container := map[string]any{
		"name": "istio-proxy",
		"ports": []any{
			map[string]any{"containerPort": 15020, "name": "metrics", "protocol": "TCP"},
			map[string]any{"containerPort": 15021, "name": "status-port", "protocol": "TCP"},
			map[string]any{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
		},
		"image":          Image(t.gw, o.Image),
		"args":           args,
		"env":            env,
		"startupProbe":   probe(30, 1, 1),
		"readinessProbe": probe(4, 0, 15),
		"securityContext": map[string]any{
			"privileged":               false,
			"runAsGroup":               1337,
			"runAsUser":                1337,
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem":   true,
			"runAsNonRoot":             true,
			"capabilities":             map[string]any{"drop": []any{"ALL"}},
		},
		"volumeMounts": []any{
			mount("/var/run/secrets/workload-spiffe-uds", "workload-socket"),
			mount("/var/run/secrets/istio", "istiod-ca-cert"),
			mount("/var/lib/istio/data", "istio-data"),
			mount("/etc/istio/proxy", "istio-envoy"),
			mount("/var/run/secrets/tokens", "istio-token"),
			mount("/etc/istio/pod", "istio-podinfo"),
		},
	}
	if o.ImagePullPolicy != "" {
		container["imagePullPolicy"] = string(o.ImagePullPolicy)
	}
	if r := resourcesMap(*o.Resources); r != nil {
		container["resources"] = r
	}
	volumes := []any{
		map[string]any{"name": "workload-socket", "emptyDir": map[string]any{}},
		map[string]any{"name": "istio-envoy", "emptyDir": map[string]any{"medium": "Memory"}},
		map[string]any{"name": "go-proxy-envoy", "emptyDir": map[string]any{"medium": "Memory"}},
		map[string]any{"name": "istio-data", "emptyDir": map[string]any{}},
		map[string]any{"name": "go-proxy-data", "emptyDir": map[string]any{}},
		map[string]any{"name": "istio-podinfo", "downwardAPI": map[string]any{"items": []any{
			map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.labels"}, "path": "labels"},
			map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.annotations"}, "path": "annotations"},
		}}},
		map[string]any{"name": "istio-token", "projected": map[string]any{"sources": []any{
			map[string]any{"serviceAccountToken": map[string]any{"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}},
		}}},
		map[string]any{"name": "istiod-ca-cert", "configMap": map[string]any{"name": "istio-ca-root-cert"}},
	}
	return obj{key: "deployment", m: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   t.meta(t.names.Deployment, t.objectLabels(), t.objectAnnotations()),
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{LabelGatewayName: t.gw.Name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": podLabels, "annotations": podAnnotations},
				"spec": map[string]any{
					"serviceAccountName": t.names.ServiceAccount,
					"containers":         []any{container},
					"volumes":            volumes,
				},
			},
		},
	}}
}

func mount(path, name string) any { return map[string]any{"mountPath": path, "name": name} }

func resourcesMap(r corev1.ResourceRequirements) map[string]any {
	list := func(l corev1.ResourceList) map[string]any {
		if len(l) == 0 {
			return nil
		}
		m := map[string]any{}
		for k, v := range l {
			m[string(k)] = v.String()
		}
		return m
	}
	out := map[string]any{}
	if l := list(r.Requests); l != nil {
		out["requests"] = l
	}
	if l := list(r.Limits); l != nil {
		out["limits"] = l
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (t *template) service() obj {
	svcType := t.annotation(AnnotationServiceType, string(corev1.ServiceTypeClusterIP))
	var ports []any
	for _, p := range ServicePorts(t.gw) {
		ports = append(ports, map[string]any{"name": p.Name, "port": p.Port, "protocol": string(p.Protocol), "appProtocol": *p.AppProtocol})
	}
	spec := map[string]any{
		"ipFamilyPolicy": "PreferDualStack",
		"ports":          ports,
		"selector":       map[string]any{LabelGatewayName: t.gw.Name},
		"type":           svcType,
	}
	if len(t.gw.Spec.Addresses) > 0 && svcType == string(corev1.ServiceTypeLoadBalancer) {
		spec["loadBalancerIP"] = t.gw.Spec.Addresses[0].Value
	}
	annotations := merge(map[string]string{"networking.istio.io/traffic-distribution": "PreferClose"}, omit(t.infraAnnots, omittedAnnotations...))
	return obj{key: "service", m: map[string]any{
		"apiVersion": "v1",
		"kind":       "Service",
		"metadata":   t.meta(t.names.Deployment, t.objectLabels(), annotations),
		"spec":       spec,
	}}
}

func (t *template) hpa() obj {
	return obj{key: "horizontalPodAutoscaler", optional: true, m: map[string]any{
		"apiVersion": "autoscaling/v2",
		"kind":       "HorizontalPodAutoscaler",
		"metadata":   t.meta(t.names.Deployment, t.objectLabels(), t.objectAnnotations()),
		"spec": map[string]any{
			"scaleTargetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": t.names.Deployment},
			"maxReplicas":    1,
		},
	}}
}

func (t *template) pdb() obj {
	return obj{key: "podDisruptionBudget", optional: true, m: map[string]any{
		"apiVersion": "policy/v1",
		"kind":       "PodDisruptionBudget",
		"metadata":   t.meta(t.names.Deployment, t.objectLabels(), t.objectAnnotations()),
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{LabelGatewayName: t.gw.Name}},
		},
	}}
}

// ServicePorts are the Service's ports: status-port 15021, then one per
// listener port (the first listener of a port names it: its name with "."
// turned into "-", cut to 63 characters, made unique with -<port>), all TCP
// with the listener's protocol, lower-cased, as appProtocol.
func ServicePorts(gw *gwv1.Gateway) []corev1.ServicePort {
	tcp := "tcp"
	ports := []corev1.ServicePort{{Name: "status-port", Port: 15021, Protocol: corev1.ProtocolTCP, AppProtocol: &tcp}}
	seen := map[int32]bool{}
	used := map[string]bool{"status-port": true}
	for i, l := range gw.Spec.Listeners {
		if seen[int32(l.Port)] {
			continue
		}
		seen[int32(l.Port)] = true
		name := strings.ReplaceAll(string(l.Name), ".", "-")
		if len(name) > 63 {
			name = name[:63]
		}
		if name == "" {
			name = fmt.Sprintf("%s-%d", strings.ToLower(string(l.Protocol)), i)
		}
		name = uniquePortName(name, int32(l.Port), used)
		app := strings.ToLower(string(l.Protocol))
		ports = append(ports, corev1.ServicePort{Name: name, Port: int32(l.Port), Protocol: corev1.ProtocolTCP, AppProtocol: &app})
	}
	return ports
}

// uniquePortName is name, or name with -<port> (then x's) appended when
// used has it, within 63 characters.
func uniquePortName(name string, port int32, used map[string]bool) string {
	if len(name) > 63 {
		name = name[:63]
	}
	candidate := name
	for suffix := fmt.Sprintf("-%d", port); used[candidate]; suffix += "x" {
		trimmed := name
		if len(trimmed)+len(suffix) > 63 {
			trimmed = trimmed[:63-len(suffix)]
		}
		candidate = trimmed + suffix
	}
	used[candidate] = true
	return candidate
}

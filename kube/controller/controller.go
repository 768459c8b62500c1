// Package controller is the waypoint's own Gateway controller (mode B of
// docs/controller.md), built on controller-runtime: it creates the
// GatewayClass (istio-mesh by default) with the controller name
// Options.ControllerName (DefaultControllerName) and marks it Accepted, and
// for every Gateway of a class with that controller name server-side
// applies the objects kube/render renders (field manager FieldManager,
// ownership forced), owned by the Gateway, and writes the Gateway's status,
// also by server-side apply on the status subresource.
//
// It touches only objects it manages (mayApply): an existing object of the
// same name that does not carry its gateway.istio.io/managed label is left
// alone and the Gateway is not Programmed. It watches the objects it
// applies, so an edit is put back and a deleted object made again on the
// next reconcile; it deletes only the HorizontalPodAutoscaler and
// PodDisruptionBudget it made when their overlay goes away. A deleted
// Gateway's objects are left to Kubernetes' garbage collector through
// their owner references.
//
// Concurrency: controller-runtime runs each reconciler's requests one at a
// time per object; the reconcilers keep no state between requests.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/gowaypoint/waypoint/kube/render"
)

const (
	// DefaultControllerName is the controllerName of the GatewayClass the
	// controller creates and of every class whose Gateways it deploys
	// (the chart's gatewayClass.controllerName). It is not istiod's
	// istio.io/mesh-controller: istiod's deployment controller deploys the
	// Gateways of every class with that name (with its own template and
	// Envoy's image), so the two would fight over the same objects.
	DefaultControllerName = "waypoint.gowaypoint.io/controller"
	// FieldManager is the field manager of every server-side apply.
	FieldManager = "waypoint-controller"
	// DefaultClass is the GatewayClass the controller creates.
	DefaultClass = "istio-mesh"
	// DefaultSystemNamespace is where the class-defaults ConfigMaps are.
	DefaultSystemNamespace = "istio-system"
	// classDescription is the created class's spec.description (at most
	// 64 bytes, the CRD's limit).
	classDescription = "Waypoints of gowaypoint/waypoint for Istio's ambient mesh"
	// LeaderElectionID is the Lease the replicas elect a leader with.
	LeaderElectionID = "waypoint-controller.gowaypoint.io"
)

// Options configure the controller. Zero fields take the defaults.
type Options struct {
	// Class is the GatewayClass created when missing; DefaultClass.
	Class string
	// ControllerName is the controllerName of the classes whose Gateways
	// are deployed, and of the class created; DefaultControllerName. A
	// class's controllerName cannot change once it exists.
	ControllerName string
	// SystemNamespace holds the class-defaults ConfigMaps;
	// DefaultSystemNamespace.
	SystemNamespace string
	// LeaseNamespace holds the leader election Lease; SystemNamespace
	// when empty.
	LeaseNamespace string
	// Render are the rendering's options; its ControllerName is set to
	// ControllerName.
	Render render.Options
	// LeaderElect makes the replicas elect one leader, the only one that
	// reconciles.
	LeaderElect bool
	// MetricsBindAddress serves controller-runtime's Prometheus metrics on
	// /metrics; "0" turns it off.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "" or "0" turns
	// it off.
	HealthProbeBindAddress string
}

func (o *Options) defaults() {
	if o.Class == "" {
		o.Class = DefaultClass
	}
	if o.SystemNamespace == "" {
		o.SystemNamespace = DefaultSystemNamespace
	}
	if o.Render.ClusterDomain == "" {
		o.Render.ClusterDomain = render.DefaultClusterDomain
	}
	if o.ControllerName == "" {
		o.ControllerName = DefaultControllerName
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = o.SystemNamespace
	}
	o.Render.ControllerName = o.ControllerName
}

// Scheme holds the types the controller reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := gwv1.Install(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Field indexes of Gateways.
const (
	indexClass  = "spec.gatewayClassName"
	indexParams = "spec.infrastructure.parametersRef.name"
)

// NewManager makes the manager that runs the controller against the API
// server of cfg; Start runs it until its context ends. The cache holds
// every Gateway, GatewayClass and ConfigMap, and the ServiceAccounts,
// Deployments, Services, HPAs and PDBs that carry the label
// gateway.networking.k8s.io/gateway-name.
func NewManager(cfg *rest.Config, o Options) (manager.Manager, error) {
	o.defaults()
	if _, err := render.Render(render.Input{Gateway: probeGateway()}, o.Render); err != nil {
		return nil, err // the options are bad before anything runs
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	hasGatewayName, err := labels.NewRequirement(render.LabelGatewayName, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	owned := cache.ByObject{Label: labels.NewSelector().Add(*hasGatewayName)}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ServiceAccount{}:                 owned,
			&appsv1.Deployment{}:                     owned,
			&corev1.Service{}:                        owned,
			&autoscalingv2.HorizontalPodAutoscaler{}: owned,
			&policyv1.PodDisruptionBudget{}:          owned,
		}},
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.LeaseNamespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
	})
	if err != nil {
		return nil, err
	}
	if o.HealthProbeBindAddress != "" && o.HealthProbeBindAddress != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(req.Context()) {
				return errors.New("the cache has not synced")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := setup(mgr, o); err != nil {
		return nil, err
	}
	return mgr, nil
}

// probeGateway is a Gateway to check the rendering options with.
func probeGateway() *gwv1.Gateway {
	gw := &gwv1.Gateway{}
	gw.Name, gw.Namespace, gw.UID = "probe", "probe", "probe"
	return gw
}

func setup(mgr manager.Manager, o Options) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &gwv1.Gateway{}, indexClass, func(obj client.Object) []string {
		return []string{string(obj.(*gwv1.Gateway).Spec.GatewayClassName)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &gwv1.Gateway{}, indexParams, func(obj client.Object) []string {
		if name, err := render.ParametersRef(obj.(*gwv1.Gateway)); err == nil && name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return err
	}

	classes := &classReconciler{client: mgr.GetClient(), o: o, now: metav1.Now}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("gatewayclass").
		For(&gwv1.GatewayClass{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// One request at start: the class is created if it is missing.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: o.Class}})
			return nil
		})).
		Complete(classes)
	if err != nil {
		return err
	}

	gateways := &gatewayReconciler{client: mgr.GetClient(), api: mgr.GetAPIReader(), scheme: mgr.GetScheme(),
		events: mgr.GetEventRecorder(FieldManager), o: o, now: metav1.Now}
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway").
		// A Gateway's own status writes (ours) are no reason to reconcile.
		For(&gwv1.Gateway{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{},
			predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ServiceAccount{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(gateways.forConfigMap)).
		Watches(&gwv1.GatewayClass{}, handler.EnqueueRequestsFromMapFunc(gateways.forClass),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(gateways)
}

// classReconciler creates the class when it is missing and marks every
// class of Options.ControllerName Accepted.
type classReconciler struct {
	client client.Client
	o      Options
	now    func() metav1.Time
}

func (r *classReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var gc gwv1.GatewayClass
	if err := r.client.Get(ctx, req.NamespacedName, &gc); err != nil {
		if !apierrors.IsNotFound(err) || req.Name != r.o.Class {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		desc := classDescription
		gc = gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: r.o.Class},
			Spec: gwv1.GatewayClassSpec{ControllerName: gwv1.GatewayController(r.o.ControllerName), Description: &desc}}
		if err := r.client.Create(ctx, &gc, client.FieldOwner(FieldManager)); err != nil && !apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, fmt.Errorf("create GatewayClass %s: %w", r.o.Class, err)
		}
		log.Info("created the GatewayClass", "class", r.o.Class, "controllerName", r.o.ControllerName)
		return reconcile.Result{}, nil // its creation is an event of its own
	}
	if string(gc.Spec.ControllerName) != r.o.ControllerName {
		if gc.Name == r.o.Class {
			log.Info("the GatewayClass exists with another controller: its Gateways are not deployed", "class", gc.Name,
				"controllerName", gc.Spec.ControllerName)
		}
		return reconcile.Result{}, nil
	}
	st := classStatus(&gc, r.now())
	if sameJSON(st, gc.Status) {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, applyStatus(ctx, r.client, "GatewayClass", "", gc.Name, st)
}

// gatewayReconciler deploys a Gateway of our classes and writes its status.
type gatewayReconciler struct {
	client client.Client // reads from the cache
	api    client.Reader // reads from the API server
	scheme *runtime.Scheme
	events recorder.EventRecorder
	o      Options
	now    func() metav1.Time
}

// forConfigMap maps a ConfigMap to the Gateways it overlays: every Gateway
// of its class for a class-defaults ConfigMap, the Gateways whose
// parametersRef names it for the others.
func (r *gatewayReconciler) forConfigMap(ctx context.Context, o client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if class, ok := o.GetLabels()[render.LabelDefaultsForClass]; ok && o.GetNamespace() == r.o.SystemNamespace {
		if err := r.client.List(ctx, &list, client.MatchingFields{indexClass: class}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list Gateways", "class", class)
			return nil
		}
	} else if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexParams: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list Gateways", "parametersRef", o.GetName())
		return nil
	}
	return requests(list)
}

// forClass maps a GatewayClass to its Gateways.
func (r *gatewayReconciler) forClass(ctx context.Context, o client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if err := r.client.List(ctx, &list, client.MatchingFields{indexClass: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list Gateways", "class", o.GetName())
		return nil
	}
	return requests(list)
}

func requests(list gwv1.GatewayList) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, gw := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}})
	}
	return out
}

func (r *gatewayReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var gw gwv1.Gateway
	if err := r.client.Get(ctx, req.NamespacedName, &gw); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !gw.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	var gc gwv1.GatewayClass
	if err := r.client.Get(ctx, types.NamespacedName{Name: string(gw.Spec.GatewayClassName)}, &gc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err) // its creation brings the Gateway back
	}
	if string(gc.Spec.ControllerName) != r.o.ControllerName {
		return reconcile.Result{}, nil
	}
	ob, applyErr := r.deploy(ctx, &gw)
	st := gatewayStatus(&gw, ob, r.o.Render.ClusterDomain, r.now())
	var statusErr error
	if !sameJSON(st, gw.Status) {
		statusErr = applyStatus(ctx, r.client, "Gateway", gw.Namespace, gw.Name, st)
	}
	return reconcile.Result{}, errors.Join(applyErr, statusErr)
}

// deploy renders gw's objects and applies those it may; it returns what
// the status is made of, and the errors of the API calls (the request is
// retried).
func (r *gatewayReconciler) deploy(ctx context.Context, gw *gwv1.Gateway) (observed, error) {
	names := render.NamesOf(gw)
	ob := observed{service: names.Deployment, deployment: names.Deployment}
	reject := func(reason gwv1.GatewayConditionReason, format string, args ...any) (observed, error) {
		ob.notAccepted = &problem{reason: string(reason), message: fmt.Sprintf(format, args...)}
		r.events.Eventf(gw, nil, corev1.EventTypeWarning, string(reason), "Render", "%s", ob.notAccepted.message)
		return ob, nil
	}
	if !render.Managed(gw) {
		return reject(gwv1.GatewayReasonUnsupportedAddress,
			"spec.addresses names an existing deployment (a Hostname, or several addresses): %s deploys only Gateways with none or one IP", FieldManager)
	}
	in := render.Input{Gateway: gw}
	params, err := render.ParametersRef(gw)
	if err != nil {
		return reject(gwv1.GatewayReasonInvalidParameters, "%v", err)
	}
	if params != "" {
		var cm corev1.ConfigMap
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: gw.Namespace, Name: params}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				return reject(gwv1.GatewayReasonInvalidParameters, "parametersRef: ConfigMap %s/%s not found", gw.Namespace, params)
			}
			return ob, err
		}
		in.Parameters = &cm
	}
	var defaults corev1.ConfigMapList
	if err := r.client.List(ctx, &defaults, client.InNamespace(r.o.SystemNamespace),
		client.MatchingLabels{render.LabelDefaultsForClass: string(gw.Spec.GatewayClassName)}); err != nil {
		return ob, err
	}
	in.ClassDefaults = defaults.Items
	objs, err := render.Render(in, r.o.Render)
	if err != nil {
		return reject(gwv1.GatewayReasonInvalidParameters, "%v", err)
	}

	managed := render.ManagedLabelValue(r.o.ControllerName)
	var errs []error
	var conflicts []string
	rendered := map[string]bool{}
	for _, u := range objs {
		rendered[u.GetKind()] = true
		existing, err := r.existing(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if existing != nil && !mayApply(existing, gw, managed) {
			conflicts = append(conflicts, fmt.Sprintf("%s %s/%s exists and is not managed by %s", u.GetKind(), u.GetNamespace(), u.GetName(), FieldManager))
			continue
		}
		if existing != nil {
			// Applied only over the object mayApply saw (istiod does the same).
			u.SetResourceVersion(existing.GetResourceVersion())
		}
		if err := r.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			errs = append(errs, fmt.Errorf("apply %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err))
			continue
		}
		if existing == nil {
			r.events.Eventf(gw, u, corev1.EventTypeNormal, "Created", "Create", "created %s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
		}
	}
	if err := r.prune(ctx, gw, names.Deployment, rendered, managed); err != nil {
		errs = append(errs, err)
	}
	if len(conflicts) > 0 {
		msg := conflicts[0]
		for _, c := range conflicts[1:] {
			msg += "; " + c
		}
		ob.notProgrammed = &problem{reason: string(gwv1.GatewayReasonInvalid), message: msg}
		r.events.Eventf(gw, nil, corev1.EventTypeWarning, "NotManaged", "Deploy", "%s", msg)
	} else if len(errs) > 0 {
		ob.notProgrammed = &problem{reason: string(gwv1.GatewayReasonPending), message: errors.Join(errs...).Error()}
	}

	var svc corev1.Service
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: gw.Namespace, Name: names.Deployment}, &svc); err == nil && ours(&svc, gw, managed) {
		ob.clusterIPs = svc.Spec.ClusterIPs
		if len(ob.clusterIPs) == 0 && svc.Spec.ClusterIP != "" {
			ob.clusterIPs = []string{svc.Spec.ClusterIP}
		}
	}
	var dep appsv1.Deployment
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: gw.Namespace, Name: names.Deployment}, &dep); err == nil && ours(&dep, gw, managed) {
		ob.readyReplicas = dep.Status.ReadyReplicas
	}
	return ob, errors.Join(errs...)
}

// existing is the object of u's kind, namespace and name in the cluster,
// nil when there is none: from the cache, else (the cache holds only
// objects with the gateway-name label) from the API server.
func (r *gatewayReconciler) existing(ctx context.Context, u *unstructured.Unstructured) (client.Object, error) {
	ro, err := r.scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	o, ok := ro.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", u.GroupVersionKind())
	}
	key := client.ObjectKeyFromObject(u)
	err = r.client.Get(ctx, key, o)
	if apierrors.IsNotFound(err) {
		err = r.api.Get(ctx, key, o)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get %s %s: %w", u.GetKind(), key, err)
	}
	return o, nil
}

// prune deletes the HPA and PDB of gw that are ours but no longer
// rendered (their overlay is gone).
func (r *gatewayReconciler) prune(ctx context.Context, gw *gwv1.Gateway, name string, rendered map[string]bool, managed string) error {
	var errs []error
	for _, o := range []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}} {
		kind := "HorizontalPodAutoscaler"
		if _, ok := o.(*policyv1.PodDisruptionBudget); ok {
			kind = "PodDisruptionBudget"
		}
		if rendered[kind] {
			continue
		}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: gw.Namespace, Name: name}, o); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		if !ours(o, gw, managed) {
			continue
		}
		uid := o.GetUID()
		if err := r.client.Delete(ctx, o, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", kind, gw.Namespace, name, err))
			continue
		}
		r.events.Eventf(gw, o, corev1.EventTypeNormal, "Deleted", "Delete", "deleted %s %s/%s: no overlay renders it", kind, gw.Namespace, name)
	}
	return errors.Join(errs...)
}

// applyStatus server-side applies status to the status subresource of the
// Gateway API object kind namespace/name.
func applyStatus(ctx context.Context, c client.Client, kind, namespace, name string, status any) error {
	b, err := json.Marshal(status)
	if err != nil {
		return err
	}
	st := map[string]any{}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gwv1.GroupVersion.String(),
		"kind":       kind,
		"metadata":   meta,
		"status":     st,
	}}
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply the status of %s %s: %w", kind, client.ObjectKey{Namespace: namespace, Name: name}, err)
	}
	return nil
}

// sameJSON reports whether a and b marshal to the same JSON.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

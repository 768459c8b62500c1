package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side apply field manager of everything the harness applies.
const FieldManager = "waypoint-e2e"

// connect writes the admin kubeconfig and makes the clients.
func (c *Cluster) connect(caFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("cluster: the API server's certificate: %w", err)
	}
	c.Rest = &rest.Config{Host: c.APIServer, BearerToken: c.Token, QPS: 200, Burst: 400,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	kc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "local",
		"clusters": []any{map[string]any{"name": "local", "cluster": map[string]any{
			"server": c.APIServer, "certificate-authority": caFile}}},
		"users":    []any{map[string]any{"name": "admin", "user": map[string]any{"token": c.Token}}},
		"contexts": []any{map[string]any{"name": "local", "context": map[string]any{"cluster": "local", "user": "admin"}}},
	}
	b, err := yaml.Marshal(kc)
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, b, 0o600); err != nil {
		return err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Rest); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Rest); err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Rest)
	if err != nil {
		return err
	}
	cached := memory.NewMemCacheClient(dc)
	c.apply = &applier{cached: cached, mapper: restmapper.NewDeferredDiscoveryRESTMapper(cached), dyn: c.Dynamic}
	return nil
}

// installCRDs applies the Gateway API's and Istio's CRDs and waits until each is
// established, then creates istio-system.
func (c *Cluster) installCRDs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(c.cfg.Bins.GatewayAPICRDs, "*.yaml"))
	if err != nil {
		return err
	}
	files = append(files, c.cfg.Bins.IstioCRDs)
	var crds []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		objs, err := ParseYAML(b)
		if err != nil {
			return fmt.Errorf("cluster: %s: %w", f, err)
		}
		for _, o := range objs {
			if err := c.ApplyObject(ctx, o); err != nil {
				return fmt.Errorf("cluster: %s: %w", f, err)
			}
			if o.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, o.GetName())
			}
		}
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, name := range crds {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			o, err := c.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("cluster: CRD %s not established: %w", name, err)
		}
	}
	c.apply.reset()
	_, err = c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	fmt.Fprintf(c.cfg.Log, "cluster: %d CRDs established\n", len(crds))
	return nil
}

// applyMeshConfig writes the ConfigMap istio-system/istio that istiod reads its mesh config
// from.
func (c *Cluster) applyMeshConfig(ctx context.Context) error {
	mesh := c.cfg.MeshConfig
	if mesh == "" {
		mesh = DefaultMeshConfig
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": mesh}}
	if _, err := c.Client.CoreV1().ConfigMaps("istio-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cluster: the mesh config: %w", err)
	}
	return nil
}

// ParseYAML splits a multi-document YAML (or JSON) text into objects; empty documents are
// skipped.
func ParseYAML(b []byte) ([]*unstructured.Unstructured, error) {
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// Apply applies every object of a multi-document YAML text with server-side apply (forcing
// conflicts), in order.
func (c *Cluster) Apply(ctx context.Context, text string) error {
	objs, err := ParseYAML([]byte(text))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := c.ApplyObject(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// ApplyObject applies one object with server-side apply.
func (c *Cluster) ApplyObject(ctx context.Context, o *unstructured.Unstructured) error {
	ri, err := c.apply.resource(o)
	if err != nil {
		return err
	}
	_, err = ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return nil
}

// ApplyStatus applies o's status subresource (what a controller would write).
func (c *Cluster) ApplyStatus(ctx context.Context, o *unstructured.Unstructured) error {
	ri, err := c.apply.resource(o)
	if err != nil {
		return err
	}
	_, err = ri.ApplyStatus(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply status of %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return nil
}

// Delete deletes every object of a multi-document YAML text; objects already gone are fine.
func (c *Cluster) Delete(ctx context.Context, text string) error {
	objs, err := ParseYAML([]byte(text))
	if err != nil {
		return err
	}
	for _, o := range objs {
		ri, err := c.apply.resource(o)
		if err != nil {
			return err
		}
		if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// Get reads the object that o names (kind, namespace, name).
func (c *Cluster) Get(ctx context.Context, apiVersion, kind, ns, name string) (*unstructured.Unstructured, error) {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetNamespace(ns)
	o.SetName(name)
	ri, err := c.apply.resource(o)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, name, metav1.GetOptions{})
}

// ServiceAccountToken asks the TokenRequest API for a token of ns/sa with the audience
// (istiod's is "istio-ca"), valid for an hour.
func (c *Cluster) ServiceAccountToken(ctx context.Context, ns, sa, audience string) (string, error) {
	exp := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", ns, sa, err)
	}
	return tr.Status.Token, nil
}

// applier maps objects to their resources, refreshing discovery when a kind is new (a CRD
// just installed).
type applier struct {
	mu     sync.Mutex
	cached discovery.CachedDiscoveryInterface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	dyn    dynamic.Interface
}

func (a *applier) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mapper.Reset()
}

func (a *applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	a.mu.Lock()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	a.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk, o.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return a.dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

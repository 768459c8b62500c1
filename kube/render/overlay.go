package render

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// overlayKinds are the keys an overlay ConfigMap may have, each with the
// type whose strategic merge rules its YAML is merged by (istiod's
// supportedOverlays).
var overlayKinds = map[string]any{
	"deployment":              &appsv1.Deployment{},
	"service":                 &corev1.Service{},
	"serviceAccount":          &corev1.ServiceAccount{},
	"horizontalPodAutoscaler": &autoscalingv2.HorizontalPodAutoscaler{},
	"podDisruptionBudget":     &policyv1.PodDisruptionBudget{},
}

func overlayKeys() []string {
	keys := make([]string, 0, len(overlayKinds))
	for k := range overlayKinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// overlaySource is one ConfigMap's data, named for errors.
type overlaySource struct {
	name string
	data map[string]string
}

// applyOverlays merges, in order, each source's YAML under r's key into r
// with strategic merge patch (lists with a merge key, such as containers by
// name, are merged item by item; a field set to null is removed). keep is
// false for an optional object no source has a key for.
func applyOverlays(r obj, sources []overlaySource) (m map[string]any, keep bool, err error) {
	m, err = normalize(r.m)
	if err != nil {
		return nil, false, err
	}
	before, err := metaOf(m)
	if err != nil {
		return nil, false, err
	}
	applied := false
	for _, src := range sources {
		text, ok := src.data[r.key]
		if !ok {
			continue
		}
		patch := map[string]any{}
		if err := yaml.Unmarshal([]byte(text), &patch); err != nil {
			return nil, false, fmt.Errorf("%s: overlay %q is not a YAML object: %v", src.name, r.key, err)
		}
		schema, err := strategicpatch.NewPatchMetaFromStruct(overlayKinds[r.key])
		if err != nil {
			return nil, false, err
		}
		if m, err = strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(m, patch, schema); err != nil {
			return nil, false, fmt.Errorf("%s: overlay %q: %v", src.name, r.key, err)
		}
		after, err := metaOf(m)
		if err != nil {
			return nil, false, fmt.Errorf("%s: overlay %q: %v", src.name, r.key, err)
		}
		if !sameIdentity(before, after) {
			return nil, false, fmt.Errorf("%s: overlay %q changes the object's name, namespace, owner references, finalizers or server-set metadata", src.name, r.key)
		}
		applied = true
	}
	if !applied && r.optional {
		return nil, false, nil
	}
	return m, true, nil
}

// normalize is m through JSON: the form strategic merge patch and YAML
// overlays have (numbers as float64).
func normalize(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, json.Unmarshal(b, &out)
}

func metaOf(m map[string]any) (metav1.ObjectMeta, error) {
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	b, err := json.Marshal(m)
	if err != nil {
		return o.Metadata, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o.Metadata, fmt.Errorf("metadata: %v", err)
	}
	return o.Metadata, nil
}

// sameIdentity reports whether an overlay left what istiod forbids it to
// change: the identity, the owner references, the finalizers and what only
// the server sets.
func sameIdentity(a, b metav1.ObjectMeta) bool {
	return a.Name == b.Name &&
		a.GenerateName == b.GenerateName &&
		a.Namespace == b.Namespace &&
		a.UID == b.UID &&
		a.ResourceVersion == b.ResourceVersion &&
		a.Generation == b.Generation &&
		a.CreationTimestamp.Equal(&b.CreationTimestamp) &&
		reflect.DeepEqual(a.DeletionTimestamp, b.DeletionTimestamp) &&
		reflect.DeepEqual(a.DeletionGracePeriodSeconds, b.DeletionGracePeriodSeconds) &&
		reflect.DeepEqual(a.OwnerReferences, b.OwnerReferences) &&
		slices.Equal(a.Finalizers, b.Finalizers) &&
		len(b.ManagedFields) == 0
}

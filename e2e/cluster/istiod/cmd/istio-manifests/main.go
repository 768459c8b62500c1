// Command istio-manifests writes what a local istiod needs from Istio's own charts, rendered by
// Istio's installer (the ambient profile) from the charts compiled into the pinned istio.io/istio:
//
//	OUT/inject/config, OUT/inject/values   the istio-sidecar-injector ConfigMap's data, which
//	                                        istiod reads from ./var/lib/istio/inject to render
//	                                        waypoint Deployments
//	OUT/crds/istio.yaml                     Istio's CRDs (the base chart's crd-all.gen.yaml)
//
// Usage: istio-manifests OUT
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"istio.io/istio/manifests"
	"istio.io/istio/operator/pkg/render"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: istio-manifests OUT")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "istio-manifests:", err)
		os.Exit(1)
	}
}

func write(out string) error {
	sets, _, err := render.GenerateManifest(nil, []string{"profile=ambient"}, false, nil, nil)
	if err != nil {
		return fmt.Errorf("render the ambient profile: %w", err)
	}
	var data map[string]any
	for _, set := range sets {
		for _, m := range set.Manifests {
			if m.GetKind() == "ConfigMap" && m.GetName() == "istio-sidecar-injector" {
				data, _ = m.Object["data"].(map[string]any)
			}
		}
	}
	if data == nil {
		return fmt.Errorf("the ambient profile rendered no istio-sidecar-injector ConfigMap")
	}
	for _, key := range []string{"config", "values"} {
		s, ok := data[key].(string)
		if !ok {
			return fmt.Errorf("istio-sidecar-injector has no %q", key)
		}
		if err := writeFile(filepath.Join(out, "inject", key), []byte(s)); err != nil {
			return err
		}
	}
	crds, err := fs.ReadFile(manifests.FS, "charts/base/files/crd-all.gen.yaml")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(out, "crds", "istio.yaml"), crds)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

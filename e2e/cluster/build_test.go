package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIstioctlPinsIstiod: istioctl is built from the istio.io/istio that pilot-discovery is,
// so that what it parses is what that Istio's proxies serve.
func TestIstioctlPinsIstiod(t *testing.T) {
	version := func(module string) string {
		b, err := os.ReadFile(filepath.Join(SourceDir(), module, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && f[0] == "istio.io/istio" {
				return f[1]
			}
		}
		t.Fatalf("%s/go.mod requires no istio.io/istio", module)
		return ""
	}
	if a, b := version("istiod"), version("istioctl"); a != b {
		t.Errorf("istioctl/go.mod pins istio.io/istio %s, istiod/go.mod %s: keep them equal", b, a)
	}
}

// TestInjectorData: the injector's templates are the data of the ConfigMap
// istio-sidecar-injector among the objects `helm template` renders, and a rendering without
// it, or with it incomplete, is an error.
func TestInjectorData(t *testing.T) {
	const other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata: {mesh: x}\n"
	const injector = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector, namespace: istio-system}\n"
	for _, tc := range []struct {
		name, manifest        string
		config, values, error string
	}{
		{name: "found", manifest: "---\n# Source: istiod/templates/x.yaml\n" + other + "---\n" + injector + "data:\n  config: |\n    templates: {}\n  values: '{\"global\":{}}'\n",
			config: "templates: {}\n", values: `{"global":{}}`},
		{name: "no values", manifest: injector + "data: {config: c}\n", error: "no data.config or data.values"},
		{name: "missing", manifest: other, error: "rendered no ConfigMap istio-sidecar-injector (1 objects)"},
		{name: "not a ConfigMap", manifest: "apiVersion: v1\nkind: Secret\nmetadata: {name: istio-sidecar-injector}\ndata: {config: Yw==, values: dg==}\n",
			error: "rendered no ConfigMap"},
		{name: "not YAML", manifest: "kind: [", error: "the istiod chart's manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config, values, err := injectorData([]byte(tc.manifest))
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error %v, want one with %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if config != tc.config || values != tc.values {
				t.Errorf("config %q, values %q; want %q, %q", config, values, tc.config, tc.values)
			}
		})
	}
}

// TestHelmSharesBuildWithCluster: every module that helm/go.mod and this module's go.mod both
// require is at one version in the two, so that the packages helm shares with the live tests
// (k8s.io/api, apimachinery, client-go: about 390) are compiled once; helm is built with the
// go command's default flags for the same reason (Bins.buildHelm). Drift costs a cold build
// about 70 CPU-seconds (measured for the two modules that differed), not correctness: align
// the lower one with `go get`.
func TestHelmSharesBuildWithCluster(t *testing.T) {
	requires := func(module string) map[string]string {
		b, err := os.ReadFile(filepath.Join(SourceDir(), module, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && strings.Contains(f[0], ".") && strings.HasPrefix(f[1], "v") {
				m[f[0]] = f[1]
			}
		}
		if len(m) == 0 {
			t.Fatalf("%s/go.mod requires nothing", module)
		}
		return m
	}
	helm, cluster := requires("helm"), requires(".")
	shared := 0
	for path, v := range helm {
		if w, ok := cluster[path]; ok {
			shared++
			if v != w {
				t.Errorf("%s: helm/go.mod has %s, e2e/cluster/go.mod %s", path, v, w)
			}
		}
	}
	if shared < 20 {
		t.Errorf("helm/go.mod and e2e/cluster/go.mod share %d modules: is helm still built from helm.sh/helm/v4 beside client-go?", shared)
	}
}

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

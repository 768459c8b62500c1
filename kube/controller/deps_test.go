package controller

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProxyLinksNoKubernetesClient: the proxy binary, cmd/waypoint, links
// none of the Kubernetes client libraries this package brings in (client-go,
// apimachinery, controller-runtime, the Gateway API types) nor kube/...;
// only the waypoint-controller binary does. (sigs.k8s.io/yaml, a YAML
// library, the proxy had before.)
func TestProxyLinksNoKubernetesClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/gowaypoint/waypoint/cmd/waypoint").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	n := 0
	for _, p := range strings.Fields(string(out)) {
		n++
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/controller-runtime") ||
			strings.HasPrefix(p, "sigs.k8s.io/gateway-api") || strings.HasPrefix(p, "github.com/gowaypoint/waypoint/kube") {
			t.Errorf("cmd/waypoint links %s", p)
		}
	}
	if n < 100 {
		t.Fatalf("go list -deps listed %d packages: not the proxy's", n)
	}
}

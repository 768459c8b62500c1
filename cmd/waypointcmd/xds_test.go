package waypointcmd

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run's node flags win over the environment, which wins over the
// defaults; --node-label is repeatable and adds to the pod's labels.
func TestNodeFlags(t *testing.T) {
	for _, k := range []string{"INSTANCE_IP", "POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT", "ISTIO_META_CLUSTER_ID", "ISTIO_META_ISTIO_VERSION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "labels"), []byte(`app="waypoint"`+"\n"+`gateway.networking.k8s.io/gateway-name="from-file"`), 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) *adsFlagSet {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := adsFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Nothing set: the defaults, no labels.
	n, err := parse("--pod-info-dir", filepath.Join(dir, "absent")).nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if id := n.Node().GetId(); id != "waypoint~127.0.0.5~waypoint.default~default.svc.cluster.local" || n.Labels != nil || n.ClusterID != "Kubernetes" {
		t.Errorf("defaults: id %q, labels %v, cluster id %q", id, n.Labels, n.ClusterID)
	}

	t.Setenv("INSTANCE_IP", "10.1.2.3")
	t.Setenv("POD_NAME", "wp-1")
	t.Setenv("POD_NAMESPACE", "loft")
	t.Setenv("SERVICE_ACCOUNT", "wp")
	t.Setenv("ISTIO_META_ISTIO_VERSION", "1.31.0")
	n, err = parse("--pod-info-dir", dir, "--node-namespace", "other", "--istio-version", "1.33.0", "--domain", "other.svc.corp",
		"--node-label", "gateway.networking.k8s.io/gateway-name=from-flag", "--node-label", "extra=a=b").nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	node := n.Node()
	if node.GetId() != "waypoint~10.1.2.3~wp-1.other~other.svc.corp" || node.GetCluster() != "wp.other" || n.IstioVersion != "1.33.0" {
		t.Errorf("id %q, cluster %q, version %q", node.GetId(), node.GetCluster(), n.IstioVersion)
	}
	if n.Labels["gateway.networking.k8s.io/gateway-name"] != "from-flag" || n.Labels["app"] != "waypoint" || n.Labels["extra"] != "a=b" {
		t.Errorf("labels %v", n.Labels)
	}

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	adsFlags(fs)
	if err := fs.Parse([]string{"--node-label", "novalue"}); err == nil || !strings.Contains(err.Error(), `want k=v, got "novalue"`) {
		t.Errorf("--node-label novalue: %v", err)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/gowaypoint/waypoint/filters/all"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds"
)

// renderAll renders every template in bench/loadtest for a proxy working
// in its own directory, with a real bench mesh's certificates.
func renderAll(t *testing.T) (dir string, files map[string]string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	certDir := filepath.Join(dir, "certs")
	var ids []spiffe.ID
	for _, sa := range []string{saWaypoint, saClient, saPod} {
		ids = append(ids, spiffe.ID{TrustDomain: trustDomain, Namespace: idNamespace, ServiceAccount: sa})
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: certDir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	tmpls, err := filepath.Glob(filepath.Join(root, "bench", "loadtest", "*.tmpl"))
	if err != nil || len(tmpls) != 6 {
		t.Fatalf("templates %v (%v): want the 6 of bench/loadtest", tmpls, err)
	}
	files = map[string]string{}
	r := &runner{certs: certDir, templates: filepath.Join(root, "bench", "loadtest")}
	for _, tmpl := range tmpls {
		name := filepath.Base(tmpl)
		out := filepath.Join(dir, strings.TrimSuffix(name, ".tmpl"))
		if err := os.MkdirAll(out+".d", 0o755); err != nil {
			t.Fatal(err)
		}
		path, err := r.render(name, out+".d", "127.0.40.250")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "<no value>") || strings.Contains(string(b), "{{") {
			t.Errorf("%s: unfilled fields:\n%s", name, b)
		}
		files[strings.TrimSuffix(name, ".tmpl")] = path
	}
	return dir, files
}

func TestTemplatesRender(t *testing.T) {
	_, files := renderAll(t)
	for name, want := range map[string][]string{
		"waypoint.yaml": {"127.0.40.250, port_value: 8080", "address: 127.0.40.10, port_value: 8080", "spiffe://cluster.local/ns/bench/sa/pod"},
		"nginx.conf":    {"worker_processes 1;", "access_log off;", "keepalive 64;", `proxy_set_header Connection "";`, "proxy_http_version 1.1;", "listen 127.0.40.250:8082 http2;"},
		"haproxy.cfg":   {"nbthread 1", "http-reuse always", "bind 127.0.40.250:8081 proto h2"},
		"Caddyfile":     {"bind 127.0.40.250", "reverse_proxy h2c://127.0.40.10:8079"},
	} {
		b, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", name, w)
			}
		}
		if strings.Contains(string(b), "127.0.0.1") {
			t.Errorf("%s names an address outside 127.0.40.0/24", name)
		}
	}
}

// The waypoint's rendered config must pass the waypoint's own validation.
func TestWaypointConfigValidates(t *testing.T) {
	_, files := renderAll(t)
	bs, err := xds.LoadBootstrapFile(files["waypoint.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	if got := len(bs.Snapshot.Listeners); got != 4 {
		t.Errorf("%d listeners, want 4 (http1, h2c, grpc, main_internal)", got)
	}
	if got := len(bs.Snapshot.Clusters); got != 6 {
		t.Errorf("%d clusters, want 6", got)
	}
}

// The references' configs must pass their own checks, where installed.
func TestReferenceConfigsValidate(t *testing.T) {
	dir, files := renderAll(t)
	for _, tc := range []struct {
		bin, conf string
		args      func(conf string) []string
	}{
		{"nginx", "nginx.conf", func(c string) []string {
			return []string{"-t", "-q", "-p", filepath.Dir(c) + "/", "-e", filepath.Join(filepath.Dir(c), "error.log"), "-c", c}
		}},
		{"nginx", "nginx-tls-middle.conf", func(c string) []string {
			return []string{"-t", "-q", "-p", filepath.Dir(c) + "/", "-e", filepath.Join(filepath.Dir(c), "error.log"), "-c", c}
		}},
		{"nginx", "nginx-tls-edges.conf", func(c string) []string {
			return []string{"-t", "-q", "-p", filepath.Dir(c) + "/", "-e", filepath.Join(filepath.Dir(c), "error.log"), "-c", c}
		}},
		{"haproxy", "haproxy.cfg", func(c string) []string { return []string{"-c", "-q", "-f", c} }},
		{"caddy", "Caddyfile", func(c string) []string { return []string{"validate", "--adapter", "caddyfile", "--config", c} }},
	} {
		t.Run(tc.conf, func(t *testing.T) {
			bin, err := lookPath(tc.bin)
			if err != nil {
				t.Skipf("%s not installed (make loadtest installs it)", tc.bin)
			}
			cmd := exec.Command(bin, tc.args(files[tc.conf])...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s rejects %s: %v\n%s", tc.bin, tc.conf, err, out)
			}
		})
	}
}

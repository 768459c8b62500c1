package live

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAdminUnderIstiod reads the waypoint's admin port as istioctl reads an Envoy's: with
// Service reviews configured under the live istiod, `istioctl proxy-config
// clusters|listeners|routes|secret|all --file` over the waypoint's /config_dump?include_eds
// and `proxy-config endpoints --file` over its /clusters?format=json (there is no kubelet to
// port-forward to, so the dumps are fetched from the admin port and handed to istioctl, which
// its --file option is for). istioctl is built from the same istio.io/istio as istiod
// (bin/cluster/istioctl, or $WAYPOINT_ISTIOCTL).
func TestAdminUnderIstiod(t *testing.T) {
	w, b := catalogueWorld(t, 3, "admin", nil)
	host := "reviews." + w.ns + ".svc.cluster.local"
	vipCluster := "inbound-vip|9080|http|" + host

	// The endpoints istioctl shows are the pods' addresses as the waypoint reaches them; wait
	// for both to have answered so that their counters moved.
	for i := 0; i < 4; i++ {
		if code, _, err := w.call("productpage", "GET", b.url("/"), nil); err != nil || code != 200 {
			t.Fatalf("GET through the waypoint: %d %v", code, err)
		}
	}
	dump := w.adminFile(t, "/config_dump?include_eds", "config_dump.json")
	clusters := w.adminFile(t, "/clusters?format=json", "clusters.json")

	t.Run("clusters", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "clusters", "--file", dump)
		mustContain(t, out, "SERVICE FQDN", host, "9080", "inbound-vip")
		out = istioctl(t, "proxy-config", "clusters", "--file", dump, "--fqdn", host, "-o", "json")
		mustContain(t, out, `"name": "`+vipCluster+`"`)
	})
	t.Run("listeners", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "listeners", "--file", dump)
		mustContain(t, out, "ADDRESSES", "0.0.0.0   15008", "Cluster: "+vipCluster)
		out = istioctl(t, "proxy-config", "listeners", "--file", dump, "-o", "json")
		mustContain(t, out, `"name": "main_internal"`, `"name": "connect_terminate"`)
	})
	t.Run("routes", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "routes", "--file", dump)
		mustContain(t, out, vipCluster, host)
	})
	t.Run("endpoints", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "endpoints", "--file", clusters)
		mustContain(t, out, "ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER")
		for _, ip := range []string{b.v1.ip, b.v2.ip} {
			re := regexp.MustCompile(regexp.QuoteMeta(ip+":9080") + `\s+HEALTHY\s+OK\s+` + regexp.QuoteMeta(vipCluster))
			if !re.MatchString(out) {
				t.Errorf("no line %q in:\n%s", re, out)
			}
		}
	})
	t.Run("secret", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "secret", "--file", dump)
		mustContain(t, out, "RESOURCE NAME", "default", "ROOTCA", "Cert Chain", "CA")
		// default  Cert Chain  ACTIVE  true  SERIAL  NOT_AFTER  NOT_BEFORE
		re := regexp.MustCompile(`(?m)^default\s+Cert Chain\s+ACTIVE\s+true\s+[0-9a-f]+\s+(\S+)\s+(\S+)`)
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no valid default secret in:\n%s", out)
		}
		notAfter, err1 := time.Parse(time.RFC3339, m[1])
		notBefore, err2 := time.Parse(time.RFC3339, m[2])
		if err1 != nil || err2 != nil || !time.Now().After(notBefore) || !time.Now().Before(notAfter) {
			t.Errorf("default: not before %s, not after %s: not valid now (%v %v)", m[2], m[1], err1, err2)
		}
		out = istioctl(t, "proxy-config", "secret", "--file", dump, "-o", "json")
		mustContain(t, out, `"name": "default"`, `"name": "ROOTCA"`, "[redacted]")
	})
	t.Run("all", func(t *testing.T) {
		out := istioctl(t, "proxy-config", "all", "--file", dump)
		mustContain(t, out, "cluster/"+vipCluster, "listener/main_internal", "route/", "secret/default", "secret/ROOTCA",
			"endpoint/envoy://")
	})

	t.Run("admin", func(t *testing.T) {
		body, err := w.get(w.admin + "/ready")
		if err != nil || body != "LIVE\n" {
			t.Errorf("/ready: %q %v", body, err)
		}
		body, err = w.get(w.admin + "/server_info")
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			State string `json:"state"`
			Node  struct {
				ID string `json:"id"`
			} `json:"node"`
		}
		if err := json.Unmarshal([]byte(body), &info); err != nil || info.State != "LIVE" || !strings.Contains(info.Node.ID, w.proxyID()) {
			t.Errorf("/server_info: %+v %v", info, err)
		}
		body, err = w.get(w.admin + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		// istiod's inbound-vip endpoints are internal addresses (connect_originate), shown as
		// Envoy shows them.
		mustContain(t, body, vipCluster+"::envoy://connect_originate/"+b.v1.ip+":9080::health_flags::healthy",
			vipCluster+"::envoy://connect_originate/"+b.v1.ip+":9080::rq_total::", vipCluster+"::added_via_api::true")
		body, err = w.get(w.admin + "/listeners")
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, body, "connect_terminate::"+w.waypointIP+":15008")
		body, err = w.get(w.admin + "/stats?filter=^cluster_manager")
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, body, "cluster_manager.cds.update_success: ")
		body, err = w.get(w.admin + "/certs")
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, body, `"days_until_expiration"`, "spiffe://cluster.local/ns/"+w.ns+"/sa/"+w.gateway)
	})
}

// adminFile saves the answer of the waypoint's admin at path in the world's directory and
// returns the file's name.
func (w *world) adminFile(t *testing.T, path, name string) string {
	t.Helper()
	body, err := w.get(w.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(w.dir, name)
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// istioctl runs istioctl with args and returns its output; a failure fails the test.
func istioctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.bins.Istioctl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.cluster.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("istioctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("istioctl %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("no %q in:\n%s", sub, s)
		}
	}
}

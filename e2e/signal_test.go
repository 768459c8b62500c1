package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// TestSIGTERMBeforeFirstConfig: a waypoint still waiting for its first config (an xDS server
// that takes the connection and never answers, on 127.0.72.0/24) stops at SIGTERM at once, with
// status 0, as a pod deleted while istiod is away must: not at the end of a timeout, not killed
// by the signal's default action.
func TestSIGTERMBeforeFirstConfig(t *testing.T) {
	xdstest.Silent(t, "127.0.72.1:15010")
	dir := t.TempDir()
	id := spiffe.ID{TrustDomain: trustDomain, Namespace: "default", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: trustDomain, IDs: []spiffe.ID{id}}); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "waypoint-waiting", bins.waypoint, "run", "--xds", "127.0.72.1:15010", "--cert-dir", certs.IdentityDir(dir, id),
		"--hbone-addr", "127.0.72.5:15008", "--admin-addr", "127.0.72.5:15000", "--metrics-addr", "off")
	// The admin listens from the start and says the waypoint is not ready yet.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://127.0.72.5:15000/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 503 {
				t.Fatalf("/ready before any config: %d, want 503", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after SIGTERM:\n%s", p.out.String())
	}
	if p.err != nil || !strings.Contains(p.out.String(), "stopped before the first config was in force") {
		t.Errorf("exit %v, want 0 after saying it stopped before its first config:\n%s", p.err, p.out.String())
	}
}

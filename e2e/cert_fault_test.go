package e2e

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/certs"
)

// TestFaultWaypointCertExpires (issue 16): the waypoint's own workload
// certificate is replaced by one that soon expires, expires, and is
// renewed late. While it is expired, new connections fail: clients
// refuse the waypoint with a clear error (the certificate has expired),
// while connections opened before keep their tunnels; once the renewed files land the same process serves again, without a
// restart. The waiting is for the certificate's NotAfter to pass, not a
// timing assertion.
func TestFaultWaypointCertExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 56)
	if got := sendToSink(t, e.source(2), []byte("before")); !strings.HasPrefix(got, "pod-a ") {
		t.Fatalf("before the fault: sink answered %q", got)
	}
	ca, err := certs.LoadCA(filepath.Join(e.dir, certs.RootCertFile), filepath.Join(e.dir, certs.RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	reloads := func() int { return strings.Count(e.waypoint.out.String(), "reloaded identity") }
	issue := func(notAfter time.Time) {
		t.Helper()
		chain, key, err := ca.Issue(certs.IssueRequest{ID: sa("waypoint"), NotAfter: notAfter})
		if err != nil {
			t.Fatal(err)
		}
		before := reloads()
		dir := e.certDir("waypoint")
		for name, data := range map[string][]byte{certs.KeyFile: key, certs.CertChainFile: chain} {
			tmp := filepath.Join(dir, "."+name+".tmp")
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for reloads() == before {
			if time.Now().After(deadline) {
				t.Fatalf("the waypoint never reloaded its identity:\n%s", e.waypoint.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	client, err := certs.NewSource(e.certDir("client"), certs.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	handshake := func() error {
		c, err := tls.Dial("tcp", e.hboneAddr(), client.ClientTLSConfig(certs.PeerExpectation{ID: sa("waypoint")}))
		if err == nil {
			c.Close()
		}
		return err
	}

	// A certificate valid for a few more seconds is taken, then expires.
	notAfter := time.Now().Add(3 * time.Second)
	issue(notAfter)
	if err := handshake(); err != nil {
		t.Fatalf("handshake with the short-lived certificate: %v", err)
	}
	time.Sleep(time.Until(notAfter) + time.Second)
	err = handshake()
	if err == nil || !strings.Contains(err.Error(), "certificate has expired") {
		t.Fatalf("handshake with the expired certificate: %v, want the certificate has expired", err)
	}
	// Certificates are checked at the handshake, as in Envoy: the source's
	// HBONE connection opened before the expiry still carries tunnels.
	if got := sendToSink(t, e.source(2), []byte("while expired")); !strings.HasPrefix(got, "pod-a ") {
		t.Fatalf("over the connection opened before the expiry: sink answered %q", got)
	}

	// Renewed late: the same process serves again.
	issue(time.Time{})
	if err := handshake(); err != nil {
		t.Fatalf("handshake after renewal: %v", err)
	}
	if got := sendToSink(t, e.source(2), []byte("after")); !strings.HasPrefix(got, "pod-a ") {
		t.Fatalf("after renewal: sink answered %q", got)
	}
	select {
	case <-e.waypoint.done:
		t.Fatal("the waypoint exited")
	default:
	}
}

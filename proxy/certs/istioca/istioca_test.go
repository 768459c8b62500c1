package istioca

// Tests of this package bind 127.0.73.0/24.

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/istiod"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var waypointID = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"}

// fakeIstiod serves the CA over TLS (a certificate for
// istiod.istio-system.svc from the dev mesh CA) with istiod's token check.
type fakeIstiod struct {
	addr     string
	rootFile string
	ca       *certs.CA
}

func startIstiod(t *testing.T, addr string, maxTTL time.Duration) *fakeIstiod {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := ca.IssueServer([]string{istiod.DefaultServerName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(root, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := append(istiod.TokenAuth(istiod.StaticTokens(map[string]string{"good-token": "default/waypoint"})),
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	g := grpc.NewServer(opts...)
	(&Server{CA: ca, TrustDomain: "cluster.local", MaxTTL: maxTTL, Logger: quiet()}).Register(g)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return &fakeIstiod{addr: addr, rootFile: root, ca: ca}
}

func (f *fakeIstiod) dial(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(tok, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := istiod.Dial(istiod.DialConfig{TokenFile: tok, ControlPlane: xds.ControlPlane{Target: f.addr,
		TLS: &xds.ControlPlaneTLS{RootCAFile: f.rootFile, ServerName: istiod.DefaultServerName}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestCertificateFromIstiodAndRotation(t *testing.T) {
	f := startIstiod(t, "127.0.73.1:15012", 4*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, ClientConfig{Conn: f.dial(t, "good-token"), ID: waypointID, ClusterID: "Kubernetes",
		BackoffBase: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := c.Source()
	if src.Identity() != waypointID {
		t.Errorf("identity %s, want %s", src.Identity(), waypointID)
	}
	first := src.Leaf()
	if !first.Equal(src.Leaf()) || first.CheckSignatureFrom(f.ca.Certificate()) != nil {
		t.Errorf("the leaf is not signed by the mesh CA")
	}
	if life := first.NotAfter.Sub(first.NotBefore); life > 6*time.Second {
		t.Errorf("leaf lives %v; the CA caps it at 4 s (+1 s back-dating)", life)
	}
	// The leaf lives 5 s; at half of it a new one is asked for.
	deadline := time.Now().Add(15 * time.Second)
	for c.Issued() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("issued %d certificates in 15 s, want rotations every ~2.5 s", c.Issued())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if next := src.Leaf(); next.SerialNumber.Cmp(first.SerialNumber) == 0 || !next.NotAfter.After(first.NotAfter) {
		t.Errorf("the Source still serves the first leaf after %d issues", c.Issued())
	}
	// A handshake presents the current leaf.
	got, _ := src.Certificate()
	if !got.Leaf.Equal(src.Leaf()) {
		t.Errorf("Certificate and Leaf disagree")
	}
}

func TestCertificateRefused(t *testing.T) {
	f := startIstiod(t, "127.0.73.2:15012", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, ClientConfig{Conn: f.dial(t, "stolen-token"), ID: waypointID, BackoffBase: 50 * time.Millisecond, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "Unauthenticated") || !strings.Contains(err.Error(), "token refused") {
		t.Errorf("with a bad token: %v, want Unauthenticated: token refused", err)
	}

	// A good token asking for another identity: the CSR is refused.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = Start(ctx, ClientConfig{Conn: f.dial(t, "good-token"), Logger: quiet(), BackoffBase: 50 * time.Millisecond,
		ID: spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "admin"}})
	if err == nil || !strings.Contains(err.Error(), "the caller may only have spiffe://cluster.local/ns/default/sa/waypoint") {
		t.Errorf("asking for another identity: %v", err)
	}
}

func TestSignCSRChecks(t *testing.T) {
	ca, err := certs.NewCA("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	csr, _, err := certs.NewCSR(waypointID)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.SignCSR(csr, waypointID, time.Hour)
	if err != nil || len(chain) != 2 || chain[1] != string(ca.CertPEM()) {
		t.Fatalf("SignCSR = %d certificates, %v; want leaf and root", len(chain), err)
	}
	other := spiffe.ID{TrustDomain: "cluster.local", Namespace: "x", ServiceAccount: "y"}
	if _, err := ca.SignCSR(csr, other, time.Hour); err == nil {
		t.Errorf("a CSR for %s signed for %s", waypointID, other)
	}
	bad := []byte(strings.Replace(string(csr), "CERTIFICATE REQUEST", "CERTIFICATE", 2))
	if _, err := ca.SignCSR(bad, waypointID, time.Hour); err == nil {
		t.Errorf("a non-CSR PEM was signed")
	}
}

func TestTokenNeedsTLS(t *testing.T) {
	_, err := istiod.Dial(istiod.DialConfig{TokenFile: "/nonexistent", ControlPlane: xds.ControlPlane{Target: "127.0.73.3:15010"}})
	if err == nil || !strings.Contains(err.Error(), "a token is only sent over TLS") {
		t.Errorf("plaintext with a token: %v", err)
	}
	// Without a token, the plaintext control plane is refused by the CA.
	g := grpc.NewServer(istiod.TokenAuth(istiod.StaticTokens(nil))...)
	(&Server{Logger: quiet()}).Register(g)
	ln, err := net.Listen("tcp", "127.0.73.3:15010")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	defer g.Stop()
	conn, err := istiod.Dial(istiod.DialConfig{ControlPlane: xds.ControlPlane{Target: "127.0.73.3:15010"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = Start(ctx, ClientConfig{Conn: conn, ID: waypointID, BackoffBase: 50 * time.Millisecond, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "code = Unauthenticated desc = no bearer token") {
		t.Errorf("no token: %v, want Unauthenticated: no bearer token", err)
	}
}

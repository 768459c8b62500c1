package certs

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// meshFile reads one file under dir and checks its permissions.
func meshFile(t *testing.T, path string, perm os.FileMode) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkIdentityDir checks the three files of id under dir against root.
func checkIdentityDir(t *testing.T, dir string, id spiffe.ID, rootPEM []byte, now time.Time, validity time.Duration) {
	t.Helper()
	idDir := IdentityDir(dir, id)
	chainPEM := meshFile(t, filepath.Join(idDir, CertChainFile), 0o644)
	keyPEM := meshFile(t, filepath.Join(idDir, KeyFile), 0o600)
	if got := meshFile(t, filepath.Join(idDir, RootCertFile), 0o644); !bytes.Equal(got, rootPEM) {
		t.Errorf("%s/%s differs from the mesh root", idDir, RootCertFile)
	}
	leaf := pair{chainPEM, keyPEM}.leaf(t)
	_ = pair{chainPEM, keyPEM}.tlsCert(t) // the key matches
	got, err := spiffe.FromCertificate(leaf)
	if err != nil || got != id {
		t.Errorf("%s: SAN identity %v (err %v), want %v", idDir, got, err, id)
	}
	if !leaf.NotBefore.Equal(now.Add(-ClockSkew)) || !leaf.NotAfter.Equal(now.Add(validity)) {
		t.Errorf("%s: valid %v..%v, want %v..%v", idDir, leaf.NotBefore, leaf.NotAfter, now.Add(-ClockSkew), now.Add(validity))
	}
	roots, err := parseCertificates(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now}); err != nil {
		t.Errorf("%s: leaf does not chain to the mesh root: %v", idDir, err)
	}
}

func TestWriteMesh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mesh") // created by WriteMesh
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	a := spiffe.ID{Namespace: "default", ServiceAccount: "productpage"}
	b := mustID(t, "spiffe://cluster.local/ns/istio-system/sa/waypoint")

	if err := WriteMesh(MeshOptions{Dir: dir, IDs: []spiffe.ID{a, b}, Now: clock, LeafValidity: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	rootPEM := meshFile(t, filepath.Join(dir, RootCertFile), 0o644)
	rootKey := meshFile(t, filepath.Join(dir, RootKeyFile), 0o600)
	roots, err := parseCertificates(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !roots[0].IsCA || roots[0].Subject.Organization[0] != "cluster.local" || !roots[0].NotBefore.Equal(now.Add(-ClockSkew)) {
		t.Errorf("root: CA %v, O %q, NotBefore %v", roots[0].IsCA, roots[0].Subject.Organization, roots[0].NotBefore)
	}
	a.TrustDomain = DefaultTrustDomain
	checkIdentityDir(t, dir, a, rootPEM, now, 2*time.Hour)
	checkIdentityDir(t, dir, b, rootPEM, now, 2*time.Hour)
	firstA := meshFile(t, filepath.Join(IdentityDir(dir, a), CertChainFile), 0o644)

	// A second call reuses the CA for another trust domain's identity.
	foreign := spiffe.ID{Namespace: "remote", ServiceAccount: "client"}
	if err := WriteMesh(MeshOptions{Dir: dir, TrustDomain: "other.local", IDs: []spiffe.ID{foreign}, Now: clock}); err != nil {
		t.Fatal(err)
	}
	if got := meshFile(t, filepath.Join(dir, RootCertFile), 0o644); !bytes.Equal(got, rootPEM) {
		t.Error("second call replaced root-cert.pem")
	}
	if got := meshFile(t, filepath.Join(dir, RootKeyFile), 0o600); !bytes.Equal(got, rootKey) {
		t.Error("second call replaced root-key.pem")
	}
	foreign.TrustDomain = "other.local"
	checkIdentityDir(t, dir, foreign, rootPEM, now, DefaultLeafValidity)
	if got := meshFile(t, filepath.Join(IdentityDir(dir, a), CertChainFile), 0o644); !bytes.Equal(got, firstA) {
		t.Error("second call rewrote an identity it was not asked for")
	}

	// The files load as a Source.
	s := newSource(t, IdentityDir(dir, b), nil)
	if s.Identity() != b {
		t.Errorf("Source identity %v, want %v", s.Identity(), b)
	}
}

func TestWriteMeshErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(dir string) MeshOptions
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "no directory", opts: func(string) MeshOptions { return MeshOptions{} }, wantErr: "empty output directory"},
		{name: "bad trust domain", opts: func(dir string) MeshOptions { return MeshOptions{Dir: dir, TrustDomain: "a b"} },
			wantErr: "reserved character ' '"},
		{name: "identity of another trust domain",
			opts: func(dir string) MeshOptions {
				return MeshOptions{Dir: dir, IDs: []spiffe.ID{{TrustDomain: "other.local", Namespace: "a", ServiceAccount: "b"}}}
			},
			wantErr: "identity spiffe://other.local/ns/a/sa/b is not in trust domain cluster.local"},
		{name: "bad identity",
			opts: func(dir string) MeshOptions {
				return MeshOptions{Dir: dir, IDs: []spiffe.ID{{Namespace: "a", ServiceAccount: ""}}}
			},
			wantErr: "identity 1: empty service account"},
		{name: "negative validity",
			opts:    func(dir string) MeshOptions { return MeshOptions{Dir: dir, LeafValidity: -time.Hour} },
			wantErr: "negative leaf validity"},
		{name: "root certificate without key",
			opts: func(dir string) MeshOptions { return MeshOptions{Dir: dir} },
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, RootCertFile), mustCA(t, "cluster.local").CertPEM(), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "root-cert.pem but not"},
		{name: "corrupt CA",
			opts: func(dir string) MeshOptions { return MeshOptions{Dir: dir} },
			setup: func(t *testing.T, dir string) {
				for _, f := range []string{RootCertFile, RootKeyFile} {
					if err := os.WriteFile(filepath.Join(dir, f), []byte("garbage"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantErr: "no PEM CERTIFICATE block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			wantErr(t, "WriteMesh", WriteMesh(tc.opts(dir)), tc.wantErr)
		})
	}
}

func TestParseNamespacedSA(t *testing.T) {
	tests := []struct {
		in, ns, sa, wantErr string
	}{
		{in: "default/productpage", ns: "default", sa: "productpage"},
		{in: "istio-system/waypoint.v1", ns: "istio-system", sa: "waypoint.v1"},
		{in: "default", wantErr: "want <namespace>/<service-account>"},
		{in: "", wantErr: "want <namespace>/<service-account>"},
		{in: "a/b/c", wantErr: "more than one '/'"},
		{in: "/sa", wantErr: "empty namespace or service account"},
		{in: "ns/", wantErr: "empty namespace or service account"},
		{in: "ns/s a", wantErr: "reserved character ' '"},
		{in: "spiffe://cluster.local/ns/a/sa/b", wantErr: "identity \"spiffe://cluster.local/ns/a/sa/b\""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ns, sa, err := ParseNamespacedSA(tc.in)
			wantErr(t, "ParseNamespacedSA", err, tc.wantErr)
			if ns != tc.ns || sa != tc.sa {
				t.Errorf("ParseNamespacedSA(%q) = %q, %q, want %q, %q", tc.in, ns, sa, tc.ns, tc.sa)
			}
		})
	}
}

package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

func TestNewCA(t *testing.T) {
	tests := []struct {
		name     string
		td       string
		validity time.Duration
		wantSpan time.Duration // NotAfter - NotBefore
		wantErr  string
	}{
		{name: "default validity", td: "cluster.local", wantSpan: DefaultCAValidity + ClockSkew},
		{name: "explicit validity", td: "example.org", validity: 48 * time.Hour, wantSpan: 49 * time.Hour},
		{name: "empty trust domain", wantErr: "empty trust domain"},
		{name: "bad trust domain", td: "a/b", wantErr: "reserved character '/'"},
		{name: "negative validity", td: "cluster.local", validity: -time.Hour, wantErr: "negative validity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			ca, err := NewCA(tc.td, tc.validity)
			after := time.Now()
			wantErr(t, "NewCA", err, tc.wantErr)
			if err != nil {
				return
			}
			c := ca.Certificate()
			if !c.IsCA || !c.BasicConstraintsValid {
				t.Error("root is not a CA")
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("KeyUsage = %v, want CertSign|CRLSign", c.KeyUsage)
			}
			if !slices.Equal(c.Subject.Organization, []string{tc.td}) || c.Subject.CommonName != "waypoint dev mesh CA" {
				t.Errorf("subject %q, want O=%s CN=waypoint dev mesh CA", c.Subject, tc.td)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://"+tc.td {
				t.Errorf("URIs %v, want [spiffe://%s]", c.URIs, tc.td)
			}
			pub, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
			}
			if n := c.SerialNumber.BitLen(); n == 0 || n > 128 {
				t.Errorf("serial has %d bits, want 1..128", n)
			}
			if c.NotBefore.Before(before.Add(-ClockSkew)) || c.NotBefore.After(after.Add(-ClockSkew)) {
				t.Errorf("NotBefore %v, want an hour before creation (%v..%v)", c.NotBefore, before, after)
			}
			if span := c.NotAfter.Sub(c.NotBefore); span != tc.wantSpan {
				t.Errorf("validity span %v, want %v", span, tc.wantSpan)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
			if !bytes.Equal(ca.CertPEM(), encodeCert(c.Raw)) {
				t.Error("CertPEM does not hold the certificate")
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, "cluster.local")
	id := mustID(t, "spiffe://cluster.local/ns/default/sa/productpage")
	foreign := mustID(t, "spiffe://other.local/ns/default/sa/productpage")
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	tests := []struct {
		name          string
		req           IssueRequest
		wantNotBefore time.Time // zero: now-1h, checked loosely
		wantSpan      time.Duration
		wantErr       string
	}{
		{name: "defaults", req: IssueRequest{ID: id}, wantSpan: DefaultLeafValidity + ClockSkew},
		{name: "explicit times", req: IssueRequest{ID: id, NotBefore: start, NotAfter: start.Add(time.Hour)},
			wantNotBefore: start, wantSpan: time.Hour},
		{name: "other trust domain", req: IssueRequest{ID: foreign}, wantSpan: DefaultLeafValidity + ClockSkew},
		{name: "zero ID", wantErr: "empty trust domain"},
		{name: "bad ID", req: IssueRequest{ID: spiffe.ID{TrustDomain: "td", Namespace: "a/b", ServiceAccount: "sa"}},
			wantErr: "reserved character '/'"},
		{name: "NotAfter before NotBefore", req: IssueRequest{ID: id, NotBefore: start, NotAfter: start.Add(-time.Second)},
			wantErr: "is not after NotBefore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chainPEM, keyPEM, err := ca.Issue(tc.req)
			wantErr(t, "Issue", err, tc.wantErr)
			if err != nil {
				return
			}
			chain, err := parseCertificates(chainPEM)
			if err != nil {
				t.Fatal(err)
			}
			// Istio's cert-chain.pem from a self-signed istiod: leaf, root.
			if len(chain) != 2 || !chain[1].Equal(ca.Certificate()) {
				t.Fatalf("chain has %d certificates, want leaf then root", len(chain))
			}
			leaf := chain[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != tc.req.ID.String() {
				t.Errorf("URIs %v, want [%s]", leaf.URIs, tc.req.ID)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Error("leaf has SANs other than its URI")
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("KeyUsage = %v", leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ExtKeyUsage = %v, want server and client auth", leaf.ExtKeyUsage)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
			}
			if !tc.wantNotBefore.IsZero() && !leaf.NotBefore.Equal(tc.wantNotBefore) {
				t.Errorf("NotBefore %v, want %v", leaf.NotBefore, tc.wantNotBefore)
			}
			if span := leaf.NotAfter.Sub(leaf.NotBefore); span != tc.wantSpan {
				t.Errorf("validity span %v, want %v", span, tc.wantSpan)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Certificate())
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: leaf.NotBefore.Add(time.Minute),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("leaf does not verify against the root: %v", err)
			}
			// The key must match the leaf.
			_ = pair{chainPEM, keyPEM}.tlsCert(t)
		})
	}
}

func TestCAFiles(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "cluster.local")
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	loaded, err := LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate().Equal(ca.Certificate()) || !loaded.key.Equal(ca.key) {
		t.Error("loaded CA differs from the written one")
	}

	// Broken inputs, each written beside the good files.
	other := mustCA(t, "cluster.local")
	otherCert, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	if err := other.WriteFiles(otherCert, otherKey); err != nil {
		t.Fatal(err)
	}
	leaf := mustIssue(t, ca, IssueRequest{ID: mustID(t, "spiffe://cluster.local/ns/a/sa/b")})
	leafCert, leafKey := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "leaf-key.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	for path, data := range map[string][]byte{leafCert: leaf.chain, leafKey: leaf.key, garbage: []byte("not pem")} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, cert, key, wantErr string
	}{
		{"missing certificate", filepath.Join(dir, "nope.pem"), keyPath, "no such file"},
		{"missing key", certPath, filepath.Join(dir, "nope.pem"), "no such file"},
		{"garbage certificate", garbage, keyPath, "no PEM CERTIFICATE block"},
		{"garbage key", certPath, garbage, "no PEM PRIVATE KEY"},
		{"key of another CA", certPath, otherKey, "does not match certificate"},
		{"leaf is no CA", leafCert, leafKey, "certificate is not a CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCA(tc.cert, tc.key)
			wantErr(t, "LoadCA", err, tc.wantErr)
		})
	}
}

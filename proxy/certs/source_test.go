package certs

import (
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

func TestNewSource(t *testing.T) {
	ca := mustCA(t, "cluster.local")
	other := mustCA(t, "cluster.local")
	id := mustID(t, "spiffe://cluster.local/ns/a/sa/b")
	good := mustIssue(t, ca, IssueRequest{ID: id})
	now := time.Now()

	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		want    spiffe.ID
		wantErr string
	}{
		{
			name:  "good",
			setup: func(t *testing.T, dir string) { writeIdentity(t, dir, ca, good) },
			want:  id,
		},
		{
			name: "missing key",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, good)
				os.Remove(filepath.Join(dir, KeyFile))
			},
			wantErr: "key.pem: no such file",
		},
		{
			name: "garbage chain",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, pair{chain: []byte("garbage"), key: good.key})
			},
			wantErr: "cert-chain.pem: no PEM CERTIFICATE block",
		},
		{
			name: "garbage key",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, pair{chain: good.chain, key: []byte("garbage")})
			},
			wantErr: "key.pem: no PEM PRIVATE KEY",
		},
		{
			name: "key of another leaf",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, pair{chain: good.chain, key: mustIssue(t, ca, IssueRequest{ID: id}).key})
			},
			wantErr: "private key does not match public key",
		},
		{
			name: "leaf without SPIFFE ID",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, mustSign(t, ca, &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}))
			},
			wantErr: "no spiffe:// URI SAN",
		},
		{
			name: "leaf of another root",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, mustIssue(t, other, IssueRequest{ID: id}))
			},
			wantErr: "cert-chain.pem against root-cert.pem: spiffe://cluster.local/ns/a/sa/b: x509: certificate signed by unknown authority",
		},
		{
			name: "expired leaf",
			setup: func(t *testing.T, dir string) {
				writeIdentity(t, dir, ca, mustIssue(t, ca, IssueRequest{ID: id, NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}))
			},
			wantErr: "certificate has expired",
		},
		{
			name:    "empty directory",
			setup:   func(*testing.T, string) {},
			wantErr: "no such file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			s, err := NewSource(dir, SourceOptions{Logger: slog.New(slog.DiscardHandler)})
			wantErr(t, "NewSource", err, tc.wantErr)
			if err != nil {
				return
			}
			defer s.Close()
			if s.Identity() != tc.want || s.TrustDomain() != tc.want.TrustDomain {
				t.Errorf("Identity, TrustDomain = %v, %q, want %v", s.Identity(), s.TrustDomain(), tc.want)
			}
		})
	}
}

func TestSourceCloseIdempotent(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "cluster.local")
	writeIdentity(t, dir, ca, mustIssue(t, ca, IssueRequest{ID: mustID(t, "spiffe://cluster.local/ns/a/sa/b")}))
	s, err := NewSource(dir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.poll != DefaultPollInterval || s.log != slog.Default() {
		t.Errorf("defaults: poll %v, logger default %v", s.poll, s.log == slog.Default())
	}
	for i := range 3 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	select {
	case <-s.done:
	default:
		t.Error("poll goroutine still running after Close")
	}
	// The configs keep serving the last identity once the watch stopped.
	if got := s.Identity(); got.IsZero() {
		t.Error("Identity is zero after Close")
	}
}

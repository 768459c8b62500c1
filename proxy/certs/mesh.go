package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// File names of Istio's workload certificate layout (istio-agent's
// OUTPUT_CERTS directory, /etc/certs of older proxies).
const (
	// CertChainFile holds the workload certificate, then its issuers.
	CertChainFile = "cert-chain.pem"
	// KeyFile holds the workload's private key.
	KeyFile = "key.pem"
	// RootCertFile holds the trusted mesh roots.
	RootCertFile = "root-cert.pem"
	// RootKeyFile holds the dev CA's key beside its RootCertFile, at the top
	// of a directory written by WriteMesh.
	RootKeyFile = "root-key.pem"
)

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = "cluster.local"

// MeshOptions says what WriteMesh writes.
type MeshOptions struct {
	// Dir is the output directory, created if absent. Required.
	Dir string
	// TrustDomain of the identities issued by this call; DefaultTrustDomain
	// when empty. The CA's own trust domain is set only when the CA is made.
	TrustDomain string
	// IDs to issue. An ID with an empty TrustDomain gets TrustDomain; one
	// with another trust domain is an error (make a second call instead).
	// Build them from "ns/sa" arguments with ParseNamespacedSA.
	IDs []spiffe.ID
	// Now is the clock for certificate validity; time.Now when nil.
	Now func() time.Time
	// LeafValidity is the lifetime of each workload certificate from Now;
	// DefaultLeafValidity when zero.
	LeafValidity time.Duration
	// ServerNames are DNS names of control-plane servers (such as
	// istiod.istio-system.svc) to write a serving certificate for, in
	// ServerDir (see CA.IssueServer), valid for LeafValidity.
	ServerNames []string
}

// ServerDir is where WriteMesh puts the serving certificate of a DNS name:
// dir/servers/<name>.
func ServerDir(dir, name string) string { return filepath.Join(dir, "servers", name) }

// WriteMesh writes a dev mesh in Istio's layout under opts.Dir:
//
//	Dir/root-cert.pem, Dir/root-key.pem       the CA (key 0600)
//	Dir/<ns>/<sa>/cert-chain.pem              leaf + root, see CA.Issue
//	Dir/<ns>/<sa>/key.pem                     the leaf's key (0600)
//	Dir/<ns>/<sa>/root-cert.pem               the root again
//
// When both CA files exist the CA is reused, so a second call adds
// identities (or those of another trust domain) under the same root; when
// neither exists a new CA is made; one without the other is an error.
// An identity's files are replaced one at a time, each atomically; a Source
// watching them refuses a mix of old and new files and loads the new set
// once its last file lands.
func WriteMesh(opts MeshOptions) error {
	if opts.Dir == "" {
		return errors.New("write mesh: empty output directory")
	}
	td := opts.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	if err := validateTrustDomain(td); err != nil {
		return fmt.Errorf("write mesh in %s: %w", opts.Dir, err)
	}
	if opts.LeafValidity < 0 {
		return fmt.Errorf("write mesh in %s: negative leaf validity %v", opts.Dir, opts.LeafValidity)
	}
	ids := make([]spiffe.ID, len(opts.IDs))
	for i, id := range opts.IDs {
		if id.TrustDomain == "" {
			id.TrustDomain = td
		}
		if id.TrustDomain != td {
			return fmt.Errorf("write mesh in %s: identity %s is not in trust domain %s", opts.Dir, id, td)
		}
		if err := id.Validate(); err != nil {
			return fmt.Errorf("write mesh in %s: identity %d: %w", opts.Dir, i+1, err)
		}
		ids[i] = id
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	validity := opts.LeafValidity
	if validity == 0 {
		validity = DefaultLeafValidity
	}

	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("write mesh: %w", err)
	}
	ca, err := loadOrCreateCA(opts.Dir, td, now())
	if err != nil {
		return fmt.Errorf("write mesh in %s: %w", opts.Dir, err)
	}
	for _, name := range opts.ServerNames {
		chain, key, err := ca.IssueServer([]string{name}, validity)
		if err != nil {
			return fmt.Errorf("write mesh in %s: %w", opts.Dir, err)
		}
		if err := writeIdentityFiles(ServerDir(opts.Dir, name), ca.certPEM, chain, key); err != nil {
			return fmt.Errorf("write mesh server %s: %w", name, err)
		}
	}
	for _, id := range ids {
		t := now()
		chain, key, err := ca.issue(IssueRequest{ID: id, NotBefore: t.Add(-ClockSkew), NotAfter: t.Add(validity)}, t)
		if err != nil {
			return fmt.Errorf("write mesh in %s: %w", opts.Dir, err)
		}
		if err := writeIdentityFiles(IdentityDir(opts.Dir, id), ca.certPEM, chain, key); err != nil {
			return fmt.Errorf("write mesh identity %s: %w", id, err)
		}
	}
	return nil
}

// writeIdentityFiles writes Istio's three files into dir, the key last but
// one and the chain last, each atomically.
func writeIdentityFiles(dir string, root, chain, key []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{RootCertFile, root, 0o644},
		{KeyFile, key, 0o600},
		{CertChainFile, chain, 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// IdentityDir is where WriteMesh puts the files of id under dir:
// dir/<namespace>/<service account>.
func IdentityDir(dir string, id spiffe.ID) string {
	return filepath.Join(dir, id.Namespace, id.ServiceAccount)
}

// loadOrCreateCA reuses dir's CA when both of its files exist and makes and
// writes a new one for td when neither does.
func loadOrCreateCA(dir, td string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certOK && keyOK:
		return LoadCA(certPath, keyPath)
	case certOK != keyOK:
		have, missing := certPath, keyPath
		if keyOK {
			have, missing = keyPath, certPath
		}
		return nil, fmt.Errorf("found %s but not %s: remove it or supply both", have, missing)
	}
	ca, err := newCA(td, 0, now)
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(certPath, keyPath); err != nil {
		return nil, err
	}
	return ca, nil
}

// exists reports whether path exists; errors other than "not found" are
// returned.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// ParseNamespacedSA splits a command-line "namespace/serviceaccount"
// argument, e.g. "default/bookinfo-productpage".
func ParseNamespacedSA(s string) (ns, sa string, err error) {
	ns, sa, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("identity %q: want <namespace>/<service-account>", s)
	}
	if strings.Contains(sa, "/") {
		return "", "", fmt.Errorf("identity %q: more than one '/': want <namespace>/<service-account>", s)
	}
	if ns == "" || sa == "" {
		return "", "", fmt.Errorf("identity %q: empty namespace or service account: want <namespace>/<service-account>", s)
	}
	// Any trust domain will do to check the two parts' characters.
	if err := (spiffe.ID{TrustDomain: DefaultTrustDomain, Namespace: ns, ServiceAccount: sa}).Validate(); err != nil {
		return "", "", fmt.Errorf("identity %q: %w", s, err)
	}
	return ns, sa, nil
}

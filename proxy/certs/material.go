package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// material is one validated set of identity files. It is immutable and
// shared by every handshake that loaded it.
type material struct {
	cert  *tls.Certificate // the chain as presented, with Leaf set
	id    spiffe.ID
	roots *x509.CertPool
	// rootCerts are the root file's certificates, for the admin's /certs
	// and secrets dump.
	rootCerts []*x509.Certificate
}

// identityFiles are the contents of the three files of a directory, in the
// order of fileNames.
type identityFiles [3][]byte

// fileNames are the files a Source reads from its directory.
var fileNames = [3]string{CertChainFile, KeyFile, RootCertFile}

// loadMaterial checks that the files make a usable identity at now: the
// key matches the first certificate of the chain, that leaf carries one
// valid SPIFFE ID, is no CA, is valid now, and chains (through the rest of
// the chain) to a root of the root file. Errors name the file at fault.
func loadMaterial(f identityFiles, now time.Time) (*material, error) {
	chainPEM, keyPEM, rootPEM := f[0], f[1], f[2]
	chain, err := parseCertificates(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertChainFile, err)
	}
	rootCerts, err := parseCertificates(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RootCertFile, err)
	}
	if _, err := parsePrivateKey(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", CertChainFile, KeyFile, err)
	}
	leaf := chain[0]
	cert.Leaf = leaf
	id, err := spiffe.FromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertChainFile, err)
	}
	roots := x509.NewCertPool()
	for _, c := range rootCerts {
		roots.AddCert(c)
	}
	m := &material{cert: &cert, id: id, roots: roots, rootCerts: rootCerts}
	if _, err := m.verifyChain(chain, x509.ExtKeyUsageAny, now); err != nil {
		return nil, fmt.Errorf("%s against %s: %w", CertChainFile, RootCertFile, err)
	}
	return m, nil
}

// verifyChain checks a certificate chain (leaf first, as a peer sends it)
// against m's roots at now, for the given extended key usage, and returns
// the leaf's SPIFFE ID. It checks no trust domain. Errors start with the
// leaf's identity, or its subject and serial when it has none.
func (m *material) verifyChain(chain []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) (spiffe.ID, error) {
	if len(chain) == 0 {
		return spiffe.ID{}, errors.New("presented no certificate")
	}
	leaf := chain[0]
	id, idErr := spiffe.FromCertificate(leaf)
	name := id.String()
	if idErr != nil {
		name = fmt.Sprintf("certificate (subject %q, serial %x)", leaf.Subject.String(), leaf.SerialNumber)
	}
	switch {
	case now.Before(leaf.NotBefore):
		return spiffe.ID{}, fmt.Errorf("%s: certificate is not yet valid: now %s is before NotBefore %s",
			name, now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return spiffe.ID{}, fmt.Errorf("%s: certificate has expired: now %s is after NotAfter %s",
			name, now.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("%s: %w", name, err)
	}
	if idErr != nil {
		return spiffe.ID{}, fmt.Errorf("%s: %w", name, idErr)
	}
	if leaf.IsCA {
		return spiffe.ID{}, fmt.Errorf("%s: leaf certificate is a CA", name)
	}
	return id, nil
}

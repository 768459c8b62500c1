package certs

import (
	"crypto/x509"
	"log/slog"
	"time"
)

// NewSourceFromPEM returns a Source of the identity given in memory, in
// the contents of Istio's three files, checked as NewSource checks files.
// It watches nothing: Set replaces the identity (a certificate from
// istiod's CA, rotated). Close is a no-op but may be called.
func NewSourceFromPEM(certChainPEM, keyPEM, rootCertPEM []byte, logger *slog.Logger) (*Source, error) {
	if logger == nil {
		logger = slog.Default()
	}
	m, err := loadMaterial(identityFiles{certChainPEM, keyPEM, rootCertPEM}, time.Now())
	if err != nil {
		return nil, err
	}
	s := &Source{log: logger, stop: make(chan struct{}), done: make(chan struct{})}
	close(s.done)
	s.cur.Store(m)
	return s, nil
}

// Set swaps in a new identity, checked as NewSource checks files: an error
// leaves the current one serving. Handshakes that start afterwards present
// the new leaf and trust the new roots.
func (s *Source) Set(certChainPEM, keyPEM, rootCertPEM []byte) error {
	m, err := loadMaterial(identityFiles{certChainPEM, keyPEM, rootCertPEM}, time.Now())
	if err != nil {
		return err
	}
	old := s.cur.Swap(m)
	s.log.Info("identity replaced", "identity", m.id.String(), "previous", old.id.String(), "not_after", m.cert.Leaf.NotAfter)
	return nil
}

// Leaf is the current leaf certificate; the caller must not modify it.
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

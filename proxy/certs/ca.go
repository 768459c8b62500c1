package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// Defaults of the dev mesh CA.
const (
	// DefaultCAValidity is the lifetime of a root made by NewCA with a zero
	// validity, as Istio's self-signed root.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultLeafValidity is the lifetime of a workload certificate issued
	// with a zero NotAfter: Istio's default workload certificate TTL.
	DefaultLeafValidity = 24 * time.Hour
	// ClockSkew is how far before "now" certificates start to be valid, so
	// a peer whose clock runs behind still accepts a fresh certificate.
	ClockSkew = time.Hour
)

// caCommonName is the subject CN of every root made by NewCA.
const caCommonName = "waypoint dev mesh CA"

// CA is a development mesh certificate authority: a self-signed ECDSA P-256
// root that issues SPIFFE workload certificates. It is meant for tests and
// local meshes, not production (its key lives in a file).
//
// A CA is immutable after creation and safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a new self-signed root for trustDomain, valid from
// ClockSkew ago for validity (DefaultCAValidity when zero). Its subject is
// O=<trustDomain>, CN="waypoint dev mesh CA", and it carries the URI SAN
// spiffe://<trustDomain>.
func NewCA(trustDomain string, validity time.Duration) (*CA, error) {
	return newCA(trustDomain, validity, time.Now())
}

func newCA(trustDomain string, validity time.Duration, now time.Time) (*CA, error) {
	if err := validateTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	if validity < 0 {
		return nil, fmt.Errorf("new CA for %s: negative validity %v", trustDomain, validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA for %s: generate key: %w", trustDomain, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA for %s: %w", trustDomain, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: caCommonName},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{{Scheme: spiffe.Scheme, Host: trustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new CA for %s: sign root: %w", trustDomain, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA for %s: parse root: %w", trustDomain, err)
	}
	return &CA{cert: cert, certPEM: encodeCert(der), key: key}, nil
}

// LoadCA reads a root certificate and its ECDSA key from PEM files, as
// written by WriteFiles. The certificate must be a CA and match the key.
func LoadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", certPath, err)
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA: %s: certificate is not a CA", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", keyPath, err)
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load CA: %s: key is %T, want ECDSA", keyPath, signer)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA: key %s does not match certificate %s", keyPath, certPath)
	}
	return &CA{cert: cert, certPEM: encodeCert(cert.Raw), key: key}, nil
}

// WriteFiles writes the root certificate (mode 0644) and its key (mode
// 0600) as PEM, each replaced atomically. The directories must exist.
func (ca *CA) WriteFiles(certPath, keyPath string) error {
	keyPEM, err := encodeKey(ca.key)
	if err != nil {
		return fmt.Errorf("write CA: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, ca.certPEM, 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

// Certificate returns the root certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns a copy of the root certificate in PEM, the content of
// Istio's root-cert.pem.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// IssueRequest asks the CA for one workload certificate.
type IssueRequest struct {
	// ID is the identity, written as the certificate's only URI SAN. Its
	// trust domain need not be the CA's: one dev CA can sign several.
	ID spiffe.ID
	// NotBefore defaults to ClockSkew before now.
	NotBefore time.Time
	// NotAfter defaults to now plus DefaultLeafValidity. It must be after
	// NotBefore; either may lie in the past or the future, for tests.
	NotAfter time.Time
}

// Issue signs a new workload certificate and key for req.ID.
//
// The leaf is ECDSA P-256 with an empty subject, the single URI SAN of the
// ID (marked critical, as for Istio's workload certificates), extended key
// usages server and client auth, key usages digital signature and key
// encipherment, and no CA rights.
//
// certChainPEM is the leaf followed by the root, which is what istio-agent
// writes to cert-chain.pem when istiod signs with its self-signed root
// (istiod answers the CSR with [leaf, root] and the agent concatenates the
// answer). keyPEM is the leaf's key in PKCS#8.
func (ca *CA) Issue(req IssueRequest) (certChainPEM, keyPEM []byte, err error) {
	return ca.issue(req, time.Now())
}

func (ca *CA) issue(req IssueRequest, now time.Time) (certChainPEM, keyPEM []byte, err error) {
	if err := req.ID.Validate(); err != nil {
		return nil, nil, fmt.Errorf("issue certificate: identity %+v: %w", req.ID, err)
	}
	notBefore, notAfter := req.NotBefore, req.NotAfter
	if notBefore.IsZero() {
		notBefore = now.Add(-ClockSkew)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(DefaultLeafValidity)
	}
	if !notAfter.After(notBefore) {
		return nil, nil, fmt.Errorf("issue certificate for %s: NotAfter %v is not after NotBefore %v", req.ID, notAfter, notBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: generate key: %w", req.ID, err)
	}
	der, err := ca.sign(certTemplate(IssueRequest{ID: req.ID, NotBefore: notBefore, NotAfter: notAfter}), &key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", req.ID, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", req.ID, err)
	}
	certChainPEM = append(encodeCert(der), ca.certPEM...)
	return certChainPEM, keyPEM, nil
}

// certTemplate is a workload leaf for req (whose times are set): ECDSA
// key usages, server and client auth, the ID as its only URI SAN, no CA
// rights. The serial is set by sign.
func certTemplate(req IssueRequest) *x509.Certificate {
	return &x509.Certificate{
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{req.ID.URL()},
	}
}

// sign signs tmpl for pub with the CA's key, with a new random serial.
func (ca *CA) sign(tmpl *x509.Certificate, pub any) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return der, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("random serial number: %w", err)
	}
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	return serial, nil
}

// validateTrustDomain applies spiffe.ID's rules to a trust domain alone.
func validateTrustDomain(td string) error {
	if td == "" {
		return errors.New("empty trust domain")
	}
	return spiffe.ID{TrustDomain: td, Namespace: "ns", ServiceAccount: "sa"}.Validate()
}

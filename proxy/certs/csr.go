package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// NewCSR makes an ECDSA P-256 key and a certificate signing request for
// id, as Istio's agent asks istiod's CA for a workload certificate: the
// identity as the only URI SAN, an empty subject. It returns both in PEM
// (the key in PKCS#8).
func NewCSR(id spiffe.ID) (csrPEM, keyPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, fmt.Errorf("new CSR: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new CSR for %s: generate key: %w", id, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("new CSR for %s: %w", id, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, fmt.Errorf("new CSR for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}

// SignCSR signs a workload certificate for the key of a PEM certificate
// signing request, as istiod's CA does for an authenticated caller: the
// CSR's signature must hold and its identities must be exactly id (the
// caller's, which the CA checked apart); the leaf is the one Issue makes,
// valid for validity (DefaultLeafValidity when 0) from a little before
// now (ClockSkew, or a quarter of validity when that is shorter). It
// returns the chain as istiod's CreateCertificate answers: the leaf first,
// the root last, each in PEM.
func (ca *CA) SignCSR(csrPEM []byte, id spiffe.ID, validity time.Duration) ([]string, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("sign CSR: no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign CSR: %w", err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != id.String() || len(csr.DNSNames) > 0 ||
		len(csr.EmailAddresses) > 0 || len(csr.IPAddresses) > 0 {
		return nil, fmt.Errorf("sign CSR: it asks for %v %v, the caller may only have %s", csr.URIs, csr.DNSNames, id)
	}
	if validity <= 0 {
		validity = DefaultLeafValidity
	}
	now := time.Now()
	skew := min(ClockSkew, validity/4)
	der, err := ca.sign(certTemplate(IssueRequest{ID: id, NotBefore: now.Add(-skew), NotAfter: now.Add(validity)}), csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sign CSR for %s: %w", id, err)
	}
	return []string{string(encodeCert(der)), string(ca.certPEM)}, nil
}

// IssueServer signs a serving certificate for DNS names (a control
// plane's, such as istiod.istio-system.svc) with a new key: the same leaf
// as Issue, with DNS SANs instead of a SPIFFE ID. It returns the chain
// (leaf, root) and key in PEM.
func (ca *CA) IssueServer(dnsNames []string, validity time.Duration) (certChainPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 {
		return nil, nil, errors.New("issue server certificate: no DNS name")
	}
	if validity <= 0 {
		validity = DefaultLeafValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate: %w", err)
	}
	now := time.Now()
	tmpl := certTemplate(IssueRequest{NotBefore: now.Add(-ClockSkew), NotAfter: now.Add(validity)})
	tmpl.URIs = nil
	tmpl.DNSNames = dnsNames
	der, err := ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate for %v: %w", dnsNames, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return append(encodeCert(der), ca.certPEM...), keyPEM, nil
}

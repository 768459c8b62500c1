package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// ALPNH2 is the only application protocol of an HBONE link.
const ALPNH2 = "h2"

// ServerTLSConfig returns the configuration of the HBONE server (inbound,
// :15008): TLS 1.3 only, ALPN h2, the current leaf presented, and a client
// certificate required. The client's chain is verified against the roots
// current at its handshake, must be valid now, and must carry a SPIFFE ID
// in the Source's own trust domain; a client of another trust domain is
// refused even when its certificate chains to the same root. The refusal is
// the server's handshake error, e.g. "verify client certificate: peer
// spiffe://other.local/ns/a/sa/b is not in trust domain cluster.local".
//
// The config reads the Source on every handshake, so one config serves for
// the life of a listener across reloads. It is safe for concurrent use and
// must not be modified once in use. Read the client's identity with
// PeerIdentity.
func (s *Source) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		NextProtos: []string{ALPNH2},
		// Verification is ours, in VerifyConnection, against the roots of
		// the moment; RequireAnyClientCert only insists on a certificate.
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		VerifyConnection:            s.verifyClient,
		DynamicRecordSizingDisabled: true,
	}
}

// verifyClient is the server's VerifyConnection; it also runs on resumed
// sessions, so a client is checked against the current roots every time.
func (s *Source) verifyClient(cs tls.ConnectionState) error {
	m := s.cur.Load()
	id, err := m.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now())
	if err != nil {
		return fmt.Errorf("verify client certificate: peer %w", err)
	}
	if td := m.id.TrustDomain; id.TrustDomain != td {
		return fmt.Errorf("verify client certificate: peer %s is not in trust domain %s", id, td)
	}
	return nil
}

// PeerExpectation says which server a client accepts. The zero value
// accepts any identity of the Source's own trust domain.
type PeerExpectation struct {
	// ID, when set, is the one identity accepted.
	ID spiffe.ID
	// TrustDomain the peer must belong to. When empty: ID's trust domain if
	// ID is set, else the Source's own.
	TrustDomain string
	// SANPrefixes and SANExact are Envoy-style URI SAN matchers (from an
	// UpstreamTlsContext's match_subject_alt_names). When either is
	// non-empty, at least one matcher must match a URI SAN of the peer's
	// leaf. They add to the checks above, they do not replace them.
	SANPrefixes []string
	SANExact    []string
}

// ClientTLSConfig returns the configuration for dialing an HBONE peer
// (outbound, to podIP:15008): TLS 1.3 only, ALPN h2, the current leaf
// presented as client certificate. The server's chain is verified against
// the roots current at the handshake and must be valid now, then its SPIFFE
// ID is checked against expect. A refused server is the client's handshake
// error, e.g. "verify server certificate: peer identity
// spiffe://cluster.local/ns/x/sa/y, want spiffe://cluster.local/ns/x/sa/z".
//
// Mesh certificates carry no DNS name, so the config sets
// InsecureSkipVerify and does the full verification in VerifyConnection
// (which also runs on resumed sessions); ServerName only sets SNI. The
// config is safe for concurrent use and must not be modified once in use.
func (s *Source) ClientTLSConfig(expect PeerExpectation) *tls.Config {
	expect.SANPrefixes = slices.Clone(expect.SANPrefixes)
	expect.SANExact = slices.Clone(expect.SANExact)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPNH2},
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyServer(cs, &expect)
		},
		DynamicRecordSizingDisabled: true,
	}
}

// verifyServer is the client's VerifyConnection.
func (s *Source) verifyServer(cs tls.ConnectionState, expect *PeerExpectation) error {
	m := s.cur.Load()
	id, err := m.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, time.Now())
	if err != nil {
		return fmt.Errorf("verify server certificate: peer %w", err)
	}
	if err := expect.check(id, cs.PeerCertificates[0], m.id.TrustDomain); err != nil {
		return fmt.Errorf("verify server certificate: %w", err)
	}
	return nil
}

// check matches a verified peer against e; ownTD is the Source's trust
// domain.
func (e *PeerExpectation) check(id spiffe.ID, leaf *x509.Certificate, ownTD string) error {
	td := e.TrustDomain
	if td == "" {
		td = ownTD
		if !e.ID.IsZero() {
			td = e.ID.TrustDomain
		}
	}
	if id.TrustDomain != td {
		return fmt.Errorf("peer %s is not in trust domain %s", id, td)
	}
	if !e.ID.IsZero() && id != e.ID {
		return fmt.Errorf("peer identity %s, want %s", id, e.ID)
	}
	if len(e.SANPrefixes) == 0 && len(e.SANExact) == 0 {
		return nil
	}
	for _, u := range leaf.URIs {
		san := u.String()
		if slices.Contains(e.SANExact, san) {
			return nil
		}
		for _, p := range e.SANPrefixes {
			if strings.HasPrefix(san, p) {
				return nil
			}
		}
	}
	return fmt.Errorf("peer %s matches no subject alt name matcher (exact %q, prefix %q)", id, e.SANExact, e.SANPrefixes)
}

// PeerIdentity returns the SPIFFE ID of the peer of a completed handshake.
// It reads, and does not verify again, the peer's leaf: cs must come from a
// connection configured by ServerTLSConfig or ClientTLSConfig, whose
// handshake verified it.
func PeerIdentity(cs tls.ConnectionState) (spiffe.ID, error) {
	if !cs.HandshakeComplete {
		return spiffe.ID{}, errors.New("peer identity: TLS handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return spiffe.ID{}, errors.New("peer identity: peer presented no certificate")
	}
	id, err := spiffe.FromCertificate(cs.PeerCertificates[0])
	if err != nil {
		return spiffe.ID{}, fmt.Errorf("peer identity: %w", err)
	}
	return id, nil
}

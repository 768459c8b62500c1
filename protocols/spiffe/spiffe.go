// Package spiffe holds the workload identity that travels with every
// request: a SPIFFE ID of Istio's form spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
//
// It is part of the request model (the peer of an HBONE stream), so it lives
// under protocols and imports nothing of ours.
package spiffe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ID is an Istio workload identity. The zero value is "no identity".
// IDs are comparable and safe to use as map keys.
type ID struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// Scheme is the URI scheme of a SPIFFE ID.
const Scheme = "spiffe"

// Parse reads spiffe://<td>/ns/<ns>/sa/<sa>. Any other shape is an error.
func Parse(s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return ID{}, fmt.Errorf("spiffe: %q: scheme is not spiffe://", s)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return ID{}, fmt.Errorf("spiffe: %q: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", s)
	}
	id := ID{TrustDomain: parts[0], Namespace: parts[2], ServiceAccount: parts[4]}
	if err := id.Validate(); err != nil {
		return ID{}, fmt.Errorf("spiffe: %q: %w", s, err)
	}
	return id, nil
}

// Validate reports whether every part of id is present and made only of
// the characters the SPIFFE spec allows (ASCII letters, digits, '.', '-',
// '_'). Those are exactly the characters a URI carries unescaped, so an ID
// that validates survives the trip through a certificate's URI SAN and back.
func (id ID) Validate() error {
	for _, p := range []struct{ name, v string }{
		{"trust domain", id.TrustDomain},
		{"namespace", id.Namespace},
		{"service account", id.ServiceAccount},
	} {
		if p.v == "" {
			return fmt.Errorf("empty %s", p.name)
		}
		if i := strings.IndexFunc(p.v, notAllowed); i >= 0 {
			r, _ := utf8.DecodeRuneInString(p.v[i:])
			return fmt.Errorf("%s %q has a reserved character %q (allowed: letters, digits, '.', '-', '_')", p.name, p.v, r)
		}
	}
	return nil
}

// notAllowed reports whether r may not appear in a part of an ID.
func notAllowed(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	case r == '.', r == '-', r == '_':
		return false
	}
	return true
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// String renders the URI form, or "" for the zero ID.
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return Scheme + "://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// URL renders the URI form as a *url.URL, for a certificate's URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// ErrNoID is returned by FromCertificate when a certificate has no SPIFFE URI SAN.
var ErrNoID = errors.New("spiffe: certificate has no spiffe:// URI SAN")

// FromCertificate returns the identity in cert's URI SANs. A certificate
// with no SPIFFE URI, or with more than one, is refused, as SPIFFE X.509-SVIDs
// carry exactly one.
func FromCertificate(cert *x509.Certificate) (ID, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, ErrNoID
	case 1:
		return Parse(found[0].String())
	default:
		return ID{}, fmt.Errorf("spiffe: certificate has %d spiffe:// URI SANs, want one", len(found))
	}
}

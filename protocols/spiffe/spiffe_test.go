package spiffe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ID
		wantErr string
	}{
		{name: "istio form", in: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			want: ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "bookinfo-productpage"}},
		{name: "underscore and digits", in: "spiffe://td_1/ns/n-2/sa/s.3",
			want: ID{TrustDomain: "td_1", Namespace: "n-2", ServiceAccount: "s.3"}},
		{name: "other scheme", in: "https://cluster.local/ns/a/sa/b", wantErr: "scheme is not spiffe://"},
		{name: "empty", in: "", wantErr: "scheme is not spiffe://"},
		{name: "missing sa", in: "spiffe://cluster.local/ns/a", wantErr: "want spiffe://"},
		{name: "trailing slash", in: "spiffe://cluster.local/ns/a/sa/b/", wantErr: "want spiffe://"},
		{name: "swapped keywords", in: "spiffe://cluster.local/sa/a/ns/b", wantErr: "want spiffe://"},
		{name: "empty trust domain", in: "spiffe:///ns/a/sa/b", wantErr: "empty trust domain"},
		{name: "empty namespace", in: "spiffe://td/ns//sa/b", wantErr: "empty namespace"},
		{name: "query", in: "spiffe://td/ns/a/sa/b?x=1", wantErr: "reserved character '?'"},
		{name: "port", in: "spiffe://td:80/ns/a/sa/b", wantErr: "reserved character ':'"},
		{name: "userinfo", in: "spiffe://u@td/ns/a/sa/b", wantErr: "reserved character '@'"},
		{name: "percent escape", in: "spiffe://td/ns/a%2Fb/sa/b", wantErr: "reserved character '%'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				if !got.IsZero() {
					t.Errorf("Parse(%q) = %+v on error, want zero ID", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		id      ID
		wantErr string
	}{
		{name: "ok", id: ID{"cluster.local", "ns1", "sa1"}},
		{name: "no trust domain", id: ID{"", "ns1", "sa1"}, wantErr: "empty trust domain"},
		{name: "no service account", id: ID{"td", "ns1", ""}, wantErr: "empty service account"},
		{name: "slash", id: ID{"td", "a/b", "sa"}, wantErr: "reserved character '/'"},
		// Characters a URI escapes: an ID holding one would not read back
		// from its own certificate.
		{name: "parenthesis", id: ID{"td", "a(b", "sa"}, wantErr: "reserved character '('"},
		{name: "bracket", id: ID{"td", "ns", "a[b"}, wantErr: "reserved character '['"},
		{name: "newline", id: ID{"td", "ns", "a\nb"}, wantErr: `reserved character '\n'`},
		{name: "non-ascii", id: ID{"td", "é", "sa"}, wantErr: "reserved character 'é'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.id.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%+v): %v", tc.id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate(%+v) = %v, want it to contain %q", tc.id, err, tc.wantErr)
			}
		})
	}
}

// TestValidIDsRoundTrip checks, for every ASCII character, that an ID which
// validates reads back unchanged from the URI form a certificate carries.
func TestValidIDsRoundTrip(t *testing.T) {
	for c := rune(0); c < 128; c++ {
		part := "a" + string(c) + "b"
		for _, id := range []ID{{part, "ns", "sa"}, {"td", part, "sa"}, {"td", "ns", part}} {
			if id.Validate() != nil {
				continue
			}
			parsed, err := url.Parse(id.URL().String())
			if err != nil {
				t.Fatalf("%+v: URL %q does not parse: %v", id, id.URL(), err)
			}
			got, err := Parse(parsed.String())
			if err != nil || got != id {
				t.Errorf("%+v: round trip through %q = %+v, %v", id, parsed, got, err)
			}
		}
	}
}

func TestZero(t *testing.T) {
	var id ID
	if !id.IsZero() || id.String() != "" {
		t.Errorf("zero ID: IsZero=%v String=%q, want true and empty", id.IsZero(), id.String())
	}
	if (ID{TrustDomain: "td"}).IsZero() {
		t.Error("ID with a trust domain reports IsZero")
	}
}

func TestFromCertificate(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    ID
		wantErr error
		errText string
	}{
		{name: "one spiffe uri", uris: []*url.URL{mustURL("spiffe://cluster.local/ns/a/sa/b")},
			want: ID{"cluster.local", "a", "b"}},
		{name: "spiffe among others", uris: []*url.URL{mustURL("https://example.com/x"), mustURL("spiffe://td/ns/a/sa/b")},
			want: ID{"td", "a", "b"}},
		{name: "none", wantErr: ErrNoID},
		{name: "only https", uris: []*url.URL{mustURL("https://example.com/")}, wantErr: ErrNoID},
		{name: "two", uris: []*url.URL{mustURL("spiffe://td/ns/a/sa/b"), mustURL("spiffe://td/ns/a/sa/c")},
			errText: "2 spiffe:// URI SANs"},
		{name: "malformed", uris: []*url.URL{mustURL("spiffe://td/workload/x")}, errText: "want spiffe://"},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Through DER and back, as a peer's certificate arrives.
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1),
				NotBefore:    time.Unix(0, 0),
				NotAfter:     time.Unix(1<<32, 0),
				URIs:         tc.uris,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromCertificate(cert)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("FromCertificate error = %v, want %v", err, tc.wantErr)
				}
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("FromCertificate error = %v, want it to contain %q", err, tc.errText)
				}
			default:
				if err != nil {
					t.Fatalf("FromCertificate: %v", err)
				}
				if got != tc.want {
					t.Errorf("FromCertificate = %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

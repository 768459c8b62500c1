package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// signer is a key pair of the tests, made once per run.
type signer struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
}

var (
	keysOnce             sync.Once
	rsaKey, ecKey, edKey *signer
	rsaOther             *signer // same kid as rsaKey, another key
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		r, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		r2, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		rsaKey = &signer{jose.RS256, "rsa-1", r}
		rsaOther = &signer{jose.RS256, "rsa-1", r2}
		ecKey = &signer{jose.ES256, "ec-1", e}
		edKey = &signer{jose.EdDSA, "ed-1", ed}
	})
}

// jwksOf is the JWKS of the signers' public keys.
func jwksOf(t testing.TB, ss ...*signer) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, s := range ss {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.priv.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign makes a compact JWT of claims.
func (s *signer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: jose.JSONWebKey{Key: s.priv, KeyID: s.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	o, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claims is a valid claim set of issuer iss, for an hour, plus kv.
func claims(iss string, kv ...any) map[string]any {
	c := map[string]any{"iss": iss, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// newFilter builds a filter from a JwtAuthentication in JSON.
func newFilter(t testing.TB, js string, ctx ...filters.BuildContext) *Filter {
	t.Helper()
	f, err := build(js, ctx...)
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func build(js string, ctx ...filters.BuildContext) (*Filter, error) {
	var pb jwtv3.JwtAuthentication
	if err := protojson.Unmarshal([]byte(js), &pb); err != nil {
		return nil, err
	}
	c := filters.BuildContext{Name: Name}
	if len(ctx) > 0 {
		c = ctx[0]
	}
	return factory{}.New(c, &pb)
}

// testRoute is a matched route with this filter's per-route config.
type testRoute struct{ cfg any }

func (testRoute) Name() string                   { return "r" }
func (r testRoute) FilterConfig(name string) any { return map[string]any{Name: r.cfg}[name] }

type resolver struct{ r filters.Route }

func (r resolver) Resolve(*filters.Stream) filters.Route { return r.r }

// request makes a stream for GET path with headers (name, value, ...).
func request(t testing.TB, path string, h ...string) *filters.Stream {
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("reviews:9080"), Path: []byte(path)}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Add(h[i], h[i+1])
	}
	return filters.NewStream(t.Context(), req, &filters.Downstream{}, nil)
}

func bearer(tok string) []string { return []string{"authorization", "Bearer " + tok} }

// outcome runs the filter on s: "" when it passes, else "STATUS body".
func outcome(f *Filter, s *filters.Stream) string {
	if f.OnRequest(s) == filters.Continue {
		return ""
	}
	return strconv.Itoa(s.Local.Status) + " " + s.Local.Body
}

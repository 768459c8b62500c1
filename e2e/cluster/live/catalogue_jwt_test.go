package live

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// secJWTKey signs the JWT cases' tokens; secJWKS is its public half, the
// RequestAuthentication's keys (inline, or served at its jwksUri).
var (
	secJWTKey = func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}()
	secJWKS = func() string {
		b64 := base64.RawURLEncoding.EncodeToString
		b, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "kid": "live-1", "alg": "RS256", "use": "sig",
			"n": b64(secJWTKey.N.Bytes()), "e": b64(big.NewInt(int64(secJWTKey.E)).Bytes()),
		}}})
		return string(b)
	}()
)

// secToken signs claims (with iss, sub and exp added) with key as RS256.
func secToken(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": "testing@secure.istio.io", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "live-1"})
	p, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// secServeJWKS serves secJWKS at http://{{NET}}.99:8080/jwks.json, the
// jwksUri istiod fetches, until the test ends.
func secServeJWKS(t *testing.T, w *world) {
	ln, err := net.Listen("tcp", w.net+".99:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("content-type", "application/json")
		rw.Write([]byte(secJWKS))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// secJWTCheck: the waypoint verifies the token (jwt_authn, 401 when
// invalid) and RBAC allows the request only with the claim groups: group1
// in the payload jwt_authn left in the dynamic metadata (403 without it,
// and without a token, which allow_missing lets through to RBAC).
func secJWTCheck(t *testing.T, w *world, b *base) {
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"with groups: [group1]", bearer(secToken(t, secJWTKey, map[string]any{"groups": []string{"group1", "group2"}})), 200},
		{"with groups: group1", bearer(secToken(t, secJWTKey, map[string]any{"groups": "group1"})), 200},
		{"without the claim", bearer(secToken(t, secJWTKey, nil)), 403},
		{"another group", bearer(secToken(t, secJWTKey, map[string]any{"groups": []string{"group2"}})), 403},
		{"signed by another key", bearer(secToken(t, other, map[string]any{"groups": []string{"group1"}})), 401},
		{"expired", bearer(secToken(t, secJWTKey, map[string]any{"groups": []string{"group1"}, "exp": time.Now().Add(-time.Hour).Unix()})), 401},
		{"no token", nil, 403},
	} {
		code, r, err := w.call("productpage", "GET", b.url("/jwt"), c.header)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
		if code == 200 {
			for k := range r.Headers {
				if strings.EqualFold(k, "authorization") {
					t.Errorf("%s: the token reached the workload (forwardOriginalToken is false)", c.name)
				}
			}
		}
	}
}

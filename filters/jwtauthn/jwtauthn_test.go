package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const issuer = "testing@secure.istio.io"

// istiodConfig is what a live istiod renders for a RequestAuthentication
// with an inline JWKS (testdata/istiod-jwt-authn.json), its JWKS replaced
// by the test's.
func istiodConfig(t *testing.T, jwks string) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/istiod-jwt-authn.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["providers"].(map[string]any)["origins-0"].(map[string]any)["localJwks"] = map[string]any{"inlineString": jwks}
	b, _ := json.Marshal(m)
	return string(b)
}

func payloadOf(s *filters.Stream) map[string]any {
	st := s.DynamicMetadata(Namespace)
	if st == nil {
		return nil
	}
	return st.AsMap()["payload"].(map[string]any)
}

// istiod's config: requires_any [origins-0, allow_missing] on every path.
func TestIstiodRequestAuthentication(t *testing.T) {
	keys(t)
	f := newFilter(t, istiodConfig(t, jwksOf(t, rsaKey)))

	t.Run("valid", func(t *testing.T) {
		s := request(t, "/x", bearer(rsaKey.sign(t, claims(issuer, "groups", []any{"group1"}, "scope", "read write")))...)
		if o := outcome(f, s); o != "" {
			t.Fatalf("refused: %s", o)
		}
		p := payloadOf(s)
		if p == nil || p["sub"] != "alice" || p["groups"].([]any)[0] != "group1" {
			t.Errorf("payload in metadata: %v", p)
		}
		if sc, ok := p["scope"].([]any); !ok || len(sc) != 2 || sc[1] != "write" {
			t.Errorf("scope is not split on spaces: %#v", p["scope"])
		}
		if s.Request.Header.Has("authorization") {
			t.Error("the token is forwarded (forward is false)")
		}
	})
	t.Run("missing", func(t *testing.T) {
		s := request(t, "/x")
		if o := outcome(f, s); o != "" {
			t.Errorf("no token (allow_missing): %s", o)
		}
		if s.DynamicMetadata(Namespace) != nil {
			t.Error("metadata without a token")
		}
	})
	for _, c := range []struct {
		name, tok, want string
	}{
		{"expired", rsaKey.sign(t, claims(issuer, "exp", time.Now().Add(-2*time.Minute).Unix())), "401 Jwt is expired"},
		{"not yet valid", rsaKey.sign(t, claims(issuer, "nbf", time.Now().Add(2*time.Minute).Unix())), "401 Jwt not yet valid"},
		{"other issuer", rsaKey.sign(t, claims("someone@else")), "401 Jwt issuer is not configured"},
		{"bad signature", rsaOther.sign(t, claims(issuer)), "401 Jwt verification fails"},
		{"unknown kid", (&signer{rsaKey.alg, "other", rsaKey.priv}).sign(t, claims(issuer)), "401 Jwks doesn't have key to match kid or alg from Jwt"},
		{"garbage", "abc", "401 Jwt is not in the form of Header.Payload.Signature"},
		{"bad header", "e30x.e30.e30", "401 Jwt header is an invalid Base64url input or an invalid JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := request(t, "/x?a=b", bearer(c.tok)...)
			if o := outcome(f, s); o != c.want {
				t.Fatalf("got %q, want %q", o, c.want)
			}
			if v := s.Local.Header.GetString("www-authenticate"); v != `Bearer realm="http://reviews:9080/x?a=b", error="invalid_token"` {
				t.Errorf("www-authenticate: %s", v)
			}
			if !strings.HasPrefix(s.ResponseCodeDetails, "jwt_authn_access_denied{Jwt") && !strings.HasPrefix(s.ResponseCodeDetails, "jwt_authn_access_denied{Jwks") {
				t.Errorf("details: %s", s.ResponseCodeDetails)
			}
			if s.DynamicMetadata(Namespace) != nil {
				t.Error("metadata from a refused token")
			}
		})
	}
	t.Run("cors preflight", func(t *testing.T) {
		s := request(t, "/x", append(bearer("garbage"), "origin", "http://a", "access-control-request-method", "GET")...)
		s.Request.Method = "OPTIONS"
		if o := outcome(f, s); o != "" {
			t.Errorf("preflight (bypass_cors_preflight): %s", o)
		}
	})
}

// Each algorithm, with a provider required by name: its key verifies, and
// a token missing is 401 without error="invalid_token".
func TestAlgorithms(t *testing.T) {
	keys(t)
	for _, k := range []*signer{rsaKey, ecKey, edKey} {
		t.Run(string(k.alg), func(t *testing.T) {
			f := newFilter(t, `{"providers":{"p":{"issuer":"iss","localJwks":{"inlineString":`+quote(jwksOf(t, rsaOther, k))+`},
				"payloadInMetadata":"iss-payload"}},
				"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`)
			s := request(t, "/", bearer(k.sign(t, claims("iss")))...)
			if o := outcome(f, s); o != "" {
				t.Fatalf("refused: %s", o)
			}
			if st := s.DynamicMetadata(Namespace); st == nil || st.GetFields()["iss-payload"].GetStructValue().GetFields()["iss"].GetStringValue() != "iss" {
				t.Errorf("metadata: %v", st)
			}
			s = request(t, "/")
			if o := outcome(f, s); o != "401 Jwt is missing" {
				t.Errorf("no token: %q", o)
			}
			if v := s.Local.Header.GetString("www-authenticate"); v != `Bearer realm="http://reviews:9080/"` {
				t.Errorf("www-authenticate: %s", v)
			}
		})
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestAudiencesAndClock(t *testing.T) {
	keys(t)
	f := newFilter(t, `{"providers":{"p":{"issuer":"iss","audiences":["https://api.example.com/"],"clockSkewSeconds":10,
		"localJwks":{"inlineString":`+quote(jwksOf(t, rsaKey))+`}}},
		"requirementMap":{"other-aud":{"providerAndAudiences":{"providerName":"p","audiences":["other"]}}},
		"rules":[{"match":{"prefix":"/other"},"requirementName":"other-aud"},{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`)
	now := time.Now()
	for _, c := range []struct {
		name, path string
		claims     map[string]any
		want       string
	}{
		{"audience", "/", claims("iss", "aud", "api.example.com"), ""},
		{"audience list", "/", claims("iss", "aud", []any{"x", "http://api.example.com"}), ""},
		{"audience not allowed", "/", claims("iss", "aud", "x"), "403 Audiences in Jwt are not allowed"},
		{"no audience", "/", claims("iss"), "403 Audiences in Jwt are not allowed"},
		{"requirement's audiences", "/other", claims("iss", "aud", "other"), ""},
		{"requirement's audiences replace the provider's", "/other", claims("iss", "aud", "api.example.com"), "403 Audiences in Jwt are not allowed"},
		{"expired within the skew", "/", claims("iss", "aud", "api.example.com", "exp", now.Add(-5*time.Second).Unix()), ""},
		{"expired past the skew", "/", claims("iss", "aud", "api.example.com", "exp", now.Add(-20*time.Second).Unix()), "401 Jwt is expired"},
	} {
		s := request(t, c.path, bearer(rsaKey.sign(t, c.claims))...)
		if o := outcome(f, s); o != c.want {
			t.Errorf("%s: got %q, want %q", c.name, o, c.want)
		}
	}
}

// Token locations, forward, forward_payload_header and claim_to_headers.
func TestLocationsAndHeaders(t *testing.T) {
	keys(t)
	f := newFilter(t, `{"providers":{
		"h":{"issuer":"h","forward":true,"fromHeaders":[{"name":"X-Jwt","valuePrefix":"Token "}],
			"forwardPayloadHeader":"x-payload","claimToHeaders":[{"headerName":"x-sub","claimName":"sub"},{"headerName":"x-n","claimName":"a.n"}],
			"localJwks":{"inlineString":`+quote(jwksOf(t, rsaKey))+`}},
		"q":{"issuer":"q","fromParams":["tok"],"localJwks":{"inlineString":`+quote(jwksOf(t, ecKey))+`}},
		"c":{"issuer":"c","fromCookies":["session"],"localJwks":{"inlineString":`+quote(jwksOf(t, edKey))+`}}},
		"rules":[
			{"match":{"prefix":"/h"},"requires":{"providerName":"h"}},
			{"match":{"prefix":"/q"},"requires":{"providerName":"q"}},
			{"match":{"prefix":"/c"},"requires":{"providerName":"c"}},
			{"match":{"prefix":"/any"},"requires":{"requiresAny":{"requirements":[{"providerName":"h"},{"providerName":"q"}]}}},
			{"match":{"prefix":"/all"},"requires":{"requiresAll":{"requirements":[{"providerName":"h"},{"providerName":"q"}]}}},
			{"match":{"prefix":"/failed-ok"},"requires":{"allowMissingOrFailed":{}}},
			{"match":{"prefix":"/public"}}]}`)
	htok := rsaKey.sign(t, claims("h", "a", map[string]any{"n": 7}))
	qtok := ecKey.sign(t, claims("q"))
	ctok := edKey.sign(t, claims("c"))

	s := request(t, "/h", "x-jwt", "Token "+htok)
	if o := outcome(f, s); o != "" {
		t.Fatalf("header: %s", o)
	}
	h := &s.Request.Header
	if h.GetString("x-jwt") != "Token "+htok {
		t.Error("forward: the token header is gone")
	}
	if p, _ := base64.RawURLEncoding.DecodeString(h.GetString("x-payload")); !strings.Contains(string(p), `"sub":"alice"`) {
		t.Errorf("x-payload: %q", p)
	}
	if h.GetString("x-sub") != "alice" || h.GetString("x-n") != "7" {
		t.Errorf("claim headers: x-sub %q x-n %q", h.GetString("x-sub"), h.GetString("x-n"))
	}
	if o := outcome(f, request(t, "/h", "x-jwt", htok)); o != "401 Jwt is missing" {
		t.Errorf("header without the prefix: %q", o)
	}
	if o := outcome(f, request(t, "/h", bearer(htok)...)); o != "401 Jwt is missing" {
		t.Errorf("Authorization is not h's location: %q", o)
	}
	if o := outcome(f, request(t, "/q?a=1&tok="+qtok)); o != "" {
		t.Errorf("query parameter: %q", o)
	}
	if o := outcome(f, request(t, "/c", "cookie", "a=b; session="+ctok)); o != "" {
		t.Errorf("cookie: %q", o)
	}
	if o := outcome(f, request(t, "/any?tok="+qtok)); o != "" {
		t.Errorf("requires_any, the second: %q", o)
	}
	if o := outcome(f, request(t, "/any")); o != "401 Jwt is missing" {
		t.Errorf("requires_any, none: %q", o)
	}
	if o := outcome(f, request(t, "/any?tok="+htok)); o != "401 Jwt issuer is not configured" {
		t.Errorf("requires_any, h's token in q's place: %q", o)
	}
	if o := outcome(f, request(t, "/all?tok="+qtok, "x-jwt", "Token "+htok)); o != "" {
		t.Errorf("requires_all: %q", o)
	}
	if o := outcome(f, request(t, "/all?tok="+qtok)); o != "401 Jwt is missing" {
		t.Errorf("requires_all, one missing: %q", o)
	}
	if o := outcome(f, request(t, "/failed-ok", bearer("garbage")...)); o != "" {
		t.Errorf("allow_missing_or_failed: %q", o)
	}
	if o := outcome(f, request(t, "/public")); o != "" {
		t.Errorf("a rule without requirement: %q", o)
	}
	if o := outcome(f, request(t, "/elsewhere", bearer("garbage")...)); o != "" {
		t.Errorf("no rule: %q", o)
	}
}

// A route's PerRouteConfig: disabled, a requirement of the map, or a name
// not in it (403).
func TestPerRoute(t *testing.T) {
	keys(t)
	f := newFilter(t, `{"providers":{"p":{"issuer":"iss","localJwks":{"inlineString":`+quote(jwksOf(t, rsaKey))+`}}},
		"requirementMap":{"need":{"providerName":"p"}},
		"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`)
	parse := func(js string) any {
		pb := new(jwtv3.PerRouteConfig)
		if err := protojson.Unmarshal([]byte(js), pb); err != nil {
			t.Fatal(err)
		}
		v, err := factory{}.ParsePerRoute(filters.BuildContext{}, pb)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	with := func(cfg any, h ...string) *filters.Stream {
		s := request(t, "/", h...)
		s2 := filters.NewStream(t.Context(), s.Request, s.Downstream, resolver{testRoute{cfg}})
		return s2
	}
	if o := outcome(f, with(parse(`{"disabled":true}`))); o != "" {
		t.Errorf("disabled: %q", o)
	}
	if o := outcome(f, with(parse(`{"requirementName":"need"}`))); o != "401 Jwt is missing" {
		t.Errorf("need, none: %q", o)
	}
	if o := outcome(f, with(parse(`{"requirementName":"need"}`), bearer(rsaKey.sign(t, claims("iss")))...)); o != "" {
		t.Errorf("need: %q", o)
	}
	if o := outcome(f, with(parse(`{"requirementName":"nope"}`))); o != "403 Failed JWT authentication: Wrong requirement_name: nope. It should be one of [need]" {
		t.Errorf("unknown requirement: %q", o)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"providers":{"p":{"localJwks":{"inlineString":"{}"}}},"filterStateRules":{"name":"x"}}`, "filter_state_rules"},
		{`{"providers":{"p":{"localJwks":{"inlineString":"{}"},"subjects":{"exact":"x"}}}}`, `providers["p"].subjects`},
		{`{"providers":{"p":{}}}`, `providers["p"]`},
		{`{"providers":{"p":{"localJwks":{"filename":"/x"}}}}`, `local_jwks.filename`},
		{`{"providers":{"p":{"remoteJwks":{"httpUri":{"uri":"nope","cluster":"c","timeout":"1s"}}}}}`, `http_uri.uri`},
		{`{"providers":{"p":{"localJwks":{"inlineString":"{}"}}},"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"q"}}]}`, `rules[0].requires.provider_name`},
		{`{"providers":{"p":{"localJwks":{"inlineString":"{}"}}},"rules":[{"match":{"prefix":"/"},"requirementName":"q"}]}`, `Wrong requirement_name: q`},
		{`{"providers":{"p":{"localJwks":{"inlineString":"{}"}}},"rules":[{"match":{"prefix":"/"},"requires":{"extractOnlyWithoutValidation":{}}}]}`, `extract_only_without_validation`},
	} {
		_, err := build(c.js)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.js, err, c.want)
		}
	}
}

// A JWKS without a valid key is taken, as Envoy takes it, and its tokens
// refused.
func TestNoValidKeys(t *testing.T) {
	keys(t)
	f := newFilter(t, `{"providers":{"p":{"localJwks":{"inlineString":"{\"keys\":[{\"kty\":\"XX\"}]}"}}},
		"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`)
	if o := outcome(f, request(t, "/", bearer(rsaKey.sign(t, claims("iss")))...)); o != "401 Jwks doesn't have any valid public key" {
		t.Errorf("got %q", o)
	}
}

package jwtauthn

import (
	"context"
	"testing"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func benchFilter(b *testing.B, f *Filter, path string, h ...string) {
	req := &l7.Request{Method: "GET", Path: []byte(path), Authority: []byte("reviews:9080")}
	req.Header.Add("user-agent", "bench")
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Add(h[i], h[i+1])
	}
	var s filters.Stream
	ctx := context.Background()
	down := &filters.Downstream{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Init(ctx, req, down, nil)
		if f.OnRequest(&s) != filters.Continue {
			b.Fatal(s.Local.Body)
		}
	}
}

// A route no rule asks a JWT of pays a rule match and nothing else.
func BenchmarkJWTNoRequirement(b *testing.B) {
	keys(b)
	f := newFilter(b, `{"providers":{"p":{"issuer":"iss","localJwks":{"inlineString":`+quote(jwksOf(b, rsaKey))+`}}},
		"rules":[{"match":{"prefix":"/api"},"requires":{"providerName":"p"}}]}`)
	benchFilter(b, f, "/reviews/1?x=y")
}

// istiod's RequestAuthentication on a request without a token
// (allow_missing): looking for one allocates nothing.
func BenchmarkJWTIstiodNoToken(b *testing.B) {
	keys(b)
	f := newFilter(b, `{"providers":{"origins-0":{"issuer":"testing@secure.istio.io","localJwks":{"inlineString":`+quote(jwksOf(b, rsaKey))+`},
		"payloadInMetadata":"payload","normalizePayloadInMetadata":{"spaceDelimitedClaims":["permission","scope"]},"clearRouteCache":true}},
		"rules":[{"match":{"prefix":"/"},"requires":{"requiresAny":{"requirements":[{"providerName":"origins-0"},{"allowMissing":{}}]}}}],
		"bypassCorsPreflight":true}`)
	benchFilter(b, f, "/reviews/1?x=y")
}

// A valid RS256 token verified and its payload put in the metadata: a
// reference, not gated (RSA verification and the payload's Struct).
func BenchmarkJWTVerifyRS256(b *testing.B) {
	keys(b)
	f := newFilter(b, `{"providers":{"p":{"issuer":"iss","forward":true,"localJwks":{"inlineString":`+quote(jwksOf(b, rsaKey))+`},"payloadInMetadata":"payload"}},
		"rules":[{"match":{"prefix":"/"},"requires":{"providerName":"p"}}]}`)
	benchFilter(b, f, "/", bearer(rsaKey.sign(b, claims("iss", "groups", []any{"group1"})))...)
}

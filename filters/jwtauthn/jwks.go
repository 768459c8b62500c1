package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// jwks is a parsed JSON Web Key Set: the keys it could read. Envoy skips
// keys of a type it does not implement and refuses a set with no valid
// key; so does this, per request (statusJwksNoValidKeys), as Envoy takes
// the config and fails the requests.
type jwks struct {
	keys []jose.JSONWebKey
}

// parseJWKS reads a JWKS document; keys that do not parse are skipped. It
// returns nil when none is left.
func parseJWKS(doc []byte) *jwks {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil
	}
	j := &jwks{}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if _, ok := k.Key.([]byte); !ok && !k.IsPublic() {
			k = k.Public()
		}
		if k.Key == nil {
			continue
		}
		j.keys = append(j.keys, k)
	}
	if len(j.keys) == 0 {
		return nil
	}
	return j
}

// algorithms are the signature algorithms Envoy's jwt_verify_lib takes.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.HS256, jose.HS384, jose.HS512, jose.EdDSA,
}

func knownAlg(alg string) bool {
	for _, a := range algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// fits reports whether key k may verify a token signed with alg (and kid):
// as jwt_verify_lib, a key with another kid or alg is skipped, as is one
// of a type the algorithm does not use.
func fits(k *jose.JSONWebKey, alg, kid string) bool {
	if kid != "" && k.KeyID != "" && k.KeyID != kid {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return strings.HasPrefix(alg, "HS")
	}
	return false
}

// verify checks the token's signature with the keys that fit it.
func (j *jwks) verify(sig *jose.JSONWebSignature, alg, kid string) status {
	tried := false
	for i := range j.keys {
		k := &j.keys[i]
		if !fits(k, alg, kid) {
			continue
		}
		tried = true
		if _, err := sig.Verify(k.Key); err == nil {
			return statusOK
		}
	}
	if !tried {
		return statusJwksKidAlgMismatch
	}
	return statusVerificationFail
}

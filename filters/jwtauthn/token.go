package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// token is a JWT parsed, not yet verified.
type token struct {
	alg, kid   string
	header     map[string]any
	payload    map[string]any
	payloadB64 string // the payload as it came, base64url without padding
	iss        string
	aud        []string
	exp, nbf   float64 // 0: absent
	sig        *jose.JSONWebSignature
}

// b64 decodes base64url with or without padding, as jwt_verify_lib does.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// parseToken parses a compact JWT; the status says what is wrong with it
// in jwt_verify_lib's words.
func parseToken(raw string) (*token, status) {
	h, rest, ok1 := strings.Cut(raw, ".")
	p, sg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sg, ".") {
		return nil, statusBadFormat
	}
	t := &token{payloadB64: strings.TrimRight(p, "=")}
	hb, err := b64(h)
	if err != nil || json.Unmarshal(hb, &t.header) != nil || t.header == nil {
		return nil, statusHeaderParseError
	}
	alg, ok := t.header["alg"].(string)
	if !ok {
		return nil, statusHeaderBadAlg
	}
	if !knownAlg(alg) {
		return nil, statusHeaderNotImplementedAlg
	}
	t.alg = alg
	if k, ok := t.header["kid"]; ok {
		if t.kid, ok = k.(string); !ok {
			return nil, statusHeaderBadKid
		}
	}
	pb, err := b64(p)
	if err != nil || json.Unmarshal(pb, &t.payload) != nil || t.payload == nil {
		return nil, statusPayloadParseError
	}
	if v, ok := t.payload["iss"]; ok {
		if t.iss, ok = v.(string); !ok {
			return nil, statusPayloadParseError
		}
	}
	switch a := t.payload["aud"].(type) {
	case nil:
	case string:
		t.aud = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, statusPayloadParseError
			}
			t.aud = append(t.aud, s)
		}
	default:
		return nil, statusPayloadParseError
	}
	for _, c := range []struct {
		name string
		dst  *float64
	}{{"exp", &t.exp}, {"nbf", &t.nbf}} {
		switch v := t.payload[c.name].(type) {
		case nil:
		case float64:
			*c.dst = v
		default:
			return nil, statusPayloadParseError
		}
	}
	if _, err := b64(sg); err != nil {
		return nil, statusSignatureParseError
	}
	if t.sig, err = jose.ParseSignedCompact(raw, algorithms); err != nil {
		return nil, statusBadFormat
	}
	return t, statusOK
}

// normalizeAudience drops a scheme and a trailing slash, as Envoy's
// audience check compares audiences.
func normalizeAudience(a string) string {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	return strings.TrimSuffix(a, "/")
}

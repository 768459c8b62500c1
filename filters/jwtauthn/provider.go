package jwtauthn

import (
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
)

// provider is a compiled JwtProvider. Read-only after New, but for its
// remote keys' cache.
type provider struct {
	name      string
	issuer    string   // "" takes any issuer
	audiences []string // normalized; none: any audience
	locations []location

	requireExp bool
	clockSkew  float64 // seconds
	forward    bool

	forwardPayloadHeader string
	padPayload           bool
	claimToHeaders       []claimHeader
	payloadInMetadata    string
	headerInMetadata     string
	spaceDelimited       []string
	clearRouteCache      bool

	local  *jwks // local_jwks; nil with remote, or when none of its keys is valid
	remote *remoteJWKS
}

type claimHeader struct {
	header string
	path   []string // the claim name split at dots
}

// audienceAllowed reports whether one of the token's audiences is in
// allowed (none: any).
func audienceAllowed(allowed, aud []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range aud {
		if slices.Contains(allowed, normalizeAudience(a)) {
			return true
		}
	}
	return false
}

// verify checks t for p, in Envoy's order: issuer, time, audiences (aud,
// when not nil, replaces the provider's), then the signature.
func (p *provider) verify(ctx context.Context, up filters.Upstream, t *token, aud []string) status {
	if p.issuer != "" && t.iss != p.issuer {
		return statusUnknownIssuer
	}
	now := float64(time.Now().Unix())
	if t.nbf != 0 && t.nbf > now+p.clockSkew {
		return statusNotYetValid
	}
	if t.exp != 0 && t.exp+p.clockSkew < now {
		return statusExpired
	}
	if t.exp == 0 && p.requireExp {
		return statusExpired
	}
	if aud == nil {
		aud = p.audiences
	}
	if !audienceAllowed(aud, t.aud) {
		return statusAudienceNotAllowed
	}
	keys := p.local
	if p.remote != nil {
		var st status
		if keys, st = p.remote.get(ctx, up); st != statusOK {
			return st
		}
	}
	if keys == nil {
		return statusJwksNoValidKeys
	}
	return keys.verify(t.sig, t.alg, t.kid)
}

// admit applies what a verified token does to the stream: the payload
// header, claims as headers, the token's removal (unless forward), and the
// payload and header in the dynamic metadata.
func (p *provider) admit(s *filters.Stream, t *token, f found) {
	h := &s.Request.Header
	if p.forwardPayloadHeader != "" {
		v := t.payloadB64
		if p.padPayload {
			if b, err := base64.RawURLEncoding.DecodeString(v); err == nil {
				v = base64.URLEncoding.EncodeToString(b)
			}
		}
		h.Add(p.forwardPayloadHeader, v)
	}
	for _, c := range p.claimToHeaders {
		if v, ok := claimString(t.payload, c.path); ok {
			h.Add(c.header, v)
		}
	}
	if !p.forward && f.loc.kind == locHeader {
		h.Del(f.loc.name)
	}
	if p.headerInMetadata != "" {
		setMetadata(s, p.headerInMetadata, t.header)
	}
	if p.payloadInMetadata != "" {
		payload := t.payload
		if len(p.spaceDelimited) > 0 {
			payload = make(map[string]any, len(t.payload))
			for k, v := range t.payload {
				if sv, ok := v.(string); ok && slices.Contains(p.spaceDelimited, k) {
					l := []any{}
					for _, e := range strings.Fields(sv) {
						l = append(l, e)
					}
					v = l
				}
				payload[k] = v
			}
		}
		setMetadata(s, p.payloadInMetadata, payload)
	}
	if p.clearRouteCache {
		s.ClearRouteCache()
	}
}

// Namespace is the dynamic metadata namespace the filter writes
// (payload_in_metadata, header_in_metadata), which RBAC's metadata rules
// read.
const Namespace = "envoy.filters.http.jwt_authn"

func setMetadata(s *filters.Stream, key string, v map[string]any) {
	val, err := structpb.NewStruct(v)
	if err != nil {
		return
	}
	st := s.DynamicMetadata(Namespace)
	if st == nil {
		st = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		s.SetDynamicMetadata(Namespace, st)
	}
	st.Fields[key] = structpb.NewStructValue(val)
}

// claimString returns a claim (a nested one through path) as a header
// value: strings as they are, numbers as Envoy prints them, booleans as
// true or false; false for other types or when absent.
func claimString(payload map[string]any, path []string) (string, bool) {
	var v any = payload
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x >= 0 && x < 1<<64 && x == float64(uint64(x)) {
			return strconv.FormatUint(uint64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', 6, 64), true
	}
	return "", false
}

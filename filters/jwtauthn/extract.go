package jwtauthn

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/gowaypoint/waypoint/filters"
)

// location is one place a provider looks for its token.
type location struct {
	kind   locKind
	name   string // header (lower-case), query parameter or cookie
	prefix string // a header's value_prefix
}

type locKind uint8

const (
	locHeader locKind = iota
	locParam
	locCookie
)

// found is a token found in a request, and where.
type found struct {
	raw string
	loc location
}

// defaultLocations are Envoy's when a provider names none: the
// Authorization header after "Bearer ", and the access_token parameter.
var defaultLocations = []location{
	{kind: locHeader, name: "authorization", prefix: "Bearer "},
	{kind: locParam, name: "access_token"},
}

// extract appends the tokens found at locs to out.
func extract(s *filters.Stream, locs []location, out []found) []found {
	for _, l := range locs {
		switch l.kind {
		case locHeader:
			v, ok := s.Request.Header.Get(l.name)
			if !ok {
				continue
			}
			val := string(v)
			if l.prefix != "" {
				i := strings.Index(val, l.prefix)
				if i < 0 {
					continue
				}
				val = jwtPrefix(val[i+len(l.prefix):])
			}
			if val != "" {
				out = append(out, found{val, l})
			}
		case locParam:
			if v := queryParam(s.Request.Query(), l.name); v != "" {
				out = append(out, found{v, l})
			}
		case locCookie:
			if v := cookie(s, l.name); v != "" {
				out = append(out, found{v, l})
			}
		}
	}
	return out
}

// jwtPrefix returns the leading run of v made of characters a JWT may
// hold (base64url and dots), as Envoy cuts a token out of a header value.
func jwtPrefix(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=' || c == '+' || c == '/') {
			return v[:i]
		}
	}
	return v
}

// cookie returns the value of the named cookie in the request's cookie
// headers, "" when absent.
func cookie(s *filters.Stream, name string) string {
	h := &s.Request.Header
	for i := 0; i < h.Len(); i++ {
		f := h.At(i)
		if string(f.Name) != "cookie" {
			continue
		}
		for _, part := range strings.Split(string(f.Value), ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// queryParam returns the first value of the query parameter name,
// unescaped; "" when absent. It allocates only for what it returns.
func queryParam(q []byte, name string) string {
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		k, v, _ := bytes.Cut(kv, []byte("="))
		if string(k) != name {
			if bytes.IndexAny(k, "%+") < 0 {
				continue
			}
			if uk, err := url.QueryUnescape(string(k)); err != nil || uk != name {
				continue
			}
		}
		uv, err := url.QueryUnescape(string(v))
		if err != nil {
			return ""
		}
		return uv
	}
	return ""
}

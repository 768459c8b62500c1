package route

import (
	"bytes"
	"errors"
	"math/bits"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

type cookieAttr struct{ name, value string }

// hashPolicy is a compiled RouteAction.HashPolicy.
type hashPolicy struct {
	kind     hashKind
	name     string // header (lower-case), cookie or query parameter name
	pseudo   pseudoHeader
	rewrite  *regexRewrite // header values' regex_rewrite
	terminal bool
	// The cookie to generate when absent, if hasTTL.
	hasTTL      bool
	ttl         time.Duration
	cookiePath  string
	cookieAttrs []cookieAttr
}

func compileHashPolicy(pb *routev3.RouteAction_HashPolicy) (hashPolicy, error) {
	p := hashPolicy{terminal: pb.GetTerminal()}
	switch s := pb.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		p.kind, p.name = hashHeader, toLower(s.Header.GetHeaderName())
		p.pseudo = pseudoOf(p.name)
		if rw := s.Header.GetRegexRewrite(); rw != nil {
			var err error
			if p.rewrite, err = compileRegexRewrite(rw); err != nil {
				return p, pbcheck.At("header.regex_rewrite", err)
			}
		}
	case *routev3.RouteAction_HashPolicy_Cookie_:
		c := s.Cookie
		p.kind, p.name, p.cookiePath = hashCookie, c.GetName(), c.GetPath()
		if c.GetTtl() != nil {
			var err error
			if p.ttl, err = duration(c.GetTtl(), 0); err != nil {
				return p, pbcheck.At("cookie.ttl", err)
			}
			p.hasTTL = true
		}
		for _, a := range c.GetAttributes() {
			p.cookieAttrs = append(p.cookieAttrs, cookieAttr{a.GetName(), a.GetValue()})
		}
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !s.ConnectionProperties.GetSourceIp() {
			return p, pbcheck.ErrAt("connection_properties.source_ip", "must be true")
		}
		p.kind = hashSourceIP
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		p.kind, p.name = hashQuery, s.QueryParameter.GetName()
	default:
		return p, errors.New("one of header, cookie, connection_properties or query_parameter is required")
	}
	return p, nil
}

// Hash computes the request's hash for ring-hash and Maglev load
// balancing, as Envoy's HashPolicyImpl::generateHash: each policy that
// yields a value is combined as rotl(hash, 1) ^ value, and a terminal
// policy stops the evaluation once some hash exists. ok is false when no
// policy yields a value (the load balancer then picks at random). Values
// are xxHash64, as Envoy's.
func (r *Route) Hash(req *l7.Request, down *filters.Downstream) (hash uint64, ok bool) {
	for i := range r.hash {
		p := &r.hash[i]
		if v, has := p.evaluate(req, down); has {
			if ok {
				hash = bits.RotateLeft64(hash, 1)
			}
			hash ^= v
			ok = true
		}
		if p.terminal && ok {
			break
		}
	}
	return hash, ok
}

// AddSetCookies adds to the response the Set-Cookie of every cookie hash
// policy with a ttl that found no cookie in the request and so generated
// one (Envoy's addDownstreamSetCookie), for the policies Hash evaluated.
func (r *Route) AddSetCookies(resp *l7.Response, req *l7.Request, down *filters.Downstream) {
	ok := false
	for i := range r.hash {
		p := &r.hash[i]
		if p.kind == hashCookie && p.hasTTL {
			if v, found := cookieValue(req, p.name); !found || len(v) == 0 {
				buf := getScratch()
				*buf = p.appendSetCookie((*buf)[:0], down)
				resp.Header.Add("set-cookie", transientString(*buf))
				putScratch(buf)
			}
		}
		if _, has := p.evaluate(req, down); has {
			ok = true
		}
		if p.terminal && ok {
			break
		}
	}
}

func (p *hashPolicy) evaluate(req *l7.Request, down *filters.Downstream) (uint64, bool) {
	switch p.kind {
	case hashHeader:
		return p.hashHeader(req)
	case hashCookie:
		if v, ok := cookieValue(req, p.name); ok && len(v) > 0 {
			return xxHash64(v), true
		}
		if !p.hasTTL {
			return 0, false
		}
		var buf [16]byte
		return xxHash64(generatedCookie(buf[:0], down)), true
	case hashSourceIP:
		if down == nil || !down.RemoteAddr.IsValid() {
			return 0, false
		}
		var buf [64]byte
		return xxHash64(down.RemoteAddr.Addr().AppendTo(buf[:0])), true
	case hashQuery:
		_, q := splitPath(req.Path)
		if v, ok := firstQueryValue(q, p.name); ok {
			return xxHash64(v), true
		}
	}
	return 0, false
}

// hashHeader hashes a header's values: sorted and concatenated when there
// are several, each regex-rewritten first if the policy says so.
func (p *hashPolicy) hashHeader(req *l7.Request) (uint64, bool) {
	if p.pseudo != notPseudo {
		c := matchCtx{req: req}
		v, ok := c.value(p.name, p.pseudo)
		if !ok {
			return 0, false
		}
		if p.rewrite != nil {
			v = p.rewrite.replaceAll(v)
		}
		return xxHash64(v), true
	}
	fields := req.Header.Fields()
	var idx [8]int
	vals := idx[:0]
	for i := range fields {
		if string(fields[i].Name) == p.name {
			vals = append(vals, i)
		}
	}
	switch {
	case len(vals) == 0:
		return 0, false
	case len(vals) == 1 && p.rewrite == nil:
		return xxHash64(fields[vals[0]].Value), true
	}
	values := make([][]byte, 0, len(vals)) // rare: several values or a rewrite
	for _, i := range vals {
		v := fields[i].Value
		if p.rewrite != nil {
			v = p.rewrite.replaceAll(v)
		}
		values = append(values, v)
	}
	for i := 1; i < len(values); i++ {
		for j := i; j > 0 && bytes.Compare(values[j], values[j-1]) < 0; j-- {
			values[j], values[j-1] = values[j-1], values[j]
		}
	}
	buf := getScratch()
	defer putScratch(buf)
	b := (*buf)[:0]
	for _, v := range values {
		b = append(b, v...)
	}
	*buf = b
	return xxHash64(b), true
}

// cookieValue finds a cookie in the request's cookie headers, as Envoy's
// Utility::parseCookieValue: "name=value" pairs separated by ';', leading
// spaces skipped, a double-quoted value unquoted; the first match wins.
func cookieValue(req *l7.Request, name string) ([]byte, bool) {
	for _, f := range req.Header.Fields() {
		if string(f.Name) != "cookie" {
			continue
		}
		v := f.Value
		for len(v) > 0 {
			end := bytes.IndexByte(v, ';')
			if end < 0 {
				end = len(v)
			}
			pair := v[:end]
			for len(pair) > 0 && pair[0] == ' ' {
				pair = pair[1:]
			}
			if eq := bytes.IndexByte(pair, '='); eq >= 0 && string(pair[:eq]) == name {
				val := pair[eq+1:]
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					val = val[1 : len(val)-1]
				}
				return val, true
			}
			if end == len(v) {
				break
			}
			v = v[end+1:]
		}
	}
	return nil, false
}

// generatedCookie appends the value Envoy gives a generated cookie: the
// hex xxHash64 of the downstream remote and local addresses, so that every
// request of a connection gets the same one.
func generatedCookie(dst []byte, down *filters.Downstream) []byte {
	var buf [128]byte
	b := buf[:0]
	if down != nil {
		if down.RemoteAddr.IsValid() {
			b = down.RemoteAddr.AppendTo(b)
		}
		if down.LocalAddr.IsValid() {
			b = down.LocalAddr.AppendTo(b)
		}
	}
	h := xxHash64(b)
	const digits = "0123456789abcdef"
	for s := 60; s >= 0; s -= 4 {
		dst = append(dst, digits[(h>>uint(s))&0xf])
	}
	return dst
}

// appendSetCookie appends the Set-Cookie value for a generated cookie, as
// Envoy's makeSetCookieValue (HttpOnly always).
func (p *hashPolicy) appendSetCookie(dst []byte, down *filters.Downstream) []byte {
	dst = append(dst, p.name...)
	dst = append(dst, `="`...)
	dst = generatedCookie(dst, down)
	dst = append(dst, '"')
	if secs := int64(p.ttl / time.Second); secs != 0 {
		dst = append(dst, "; Max-Age="...)
		dst = strconv.AppendInt(dst, secs, 10)
	}
	if p.cookiePath != "" {
		dst = append(dst, "; Path="...)
		dst = append(dst, p.cookiePath...)
	}
	for _, a := range p.cookieAttrs {
		dst = append(dst, "; "...)
		dst = append(dst, a.name...)
		if a.value != "" {
			dst = append(dst, '=')
			dst = append(dst, a.value...)
		}
	}
	return append(dst, "; HttpOnly"...)
}

// xxHash64 is Envoy's HashUtil::xxHash64: XXH64 with seed 0.
func xxHash64(b []byte) uint64 { return xxhash.Sum64(b) }

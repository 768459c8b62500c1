package jwtauthn

import (
	"github.com/gowaypoint/waypoint/filters"
)

// requirement is a compiled JwtRequirement.
type requirement struct {
	kind      reqKind
	provider  *provider // reqProvider
	audiences []string  // reqProvider: provider_and_audiences' audiences, nil: the provider's
	children  []*requirement
}

type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

// verify checks the stream against r, applying what each verified token
// does (admit) as it goes.
func (f *Filter) verify(s *filters.Stream, r *requirement) status {
	switch r.kind {
	case reqProvider:
		toks := extract(s, r.provider.locations, nil)
		if len(toks) == 0 {
			return statusMissing
		}
		// Every token found must verify: a request with a good token and
		// a bad one must not pass on the bad one.
		for _, tk := range toks {
			t, st := parseToken(tk.raw)
			if st == statusOK {
				st = r.provider.verify(s.Context, s.Upstream, t, r.audiences)
			}
			if st != statusOK {
				return st
			}
			r.provider.admit(s, t, tk)
		}
		return statusOK
	case reqAllowMissing, reqAllowMissingOrFailed:
		st := f.verifyAnyProvider(s)
		if r.kind == reqAllowMissingOrFailed || st == statusMissing {
			return statusOK
		}
		return st
	case reqAll:
		for _, c := range r.children {
			if st := f.verify(s, c); st != statusOK {
				return st
			}
		}
		return statusOK
	case reqAny:
		// As Envoy: the first success wins; failing all, the last error
		// that says more than "missing" or "another issuer".
		final, meaningful := statusMissing, false
		for _, c := range r.children {
			st := f.verify(s, c)
			if st == statusOK {
				return statusOK
			}
			if st != statusMissing && st != statusUnknownIssuer {
				final, meaningful = st, true
			} else if !meaningful {
				final = st
			}
		}
		return final
	}
	return statusOK
}

// verifyAnyProvider checks the tokens at every provider's locations, each
// by the provider of its issuer (the first with that issuer, else the
// first with none): statusMissing when there is none, else the first
// failure or OK. Verified tokens are admitted.
func (f *Filter) verifyAnyProvider(s *filters.Stream) status {
	toks := extract(s, f.allLocations, nil)
	if len(toks) == 0 {
		return statusMissing
	}
	result := statusOK
	for _, tk := range toks {
		t, st := parseToken(tk.raw)
		var p *provider
		if st == statusOK {
			p = f.byIssuer(t.iss)
			if p == nil {
				st = statusUnknownIssuer
			}
		}
		if st == statusOK && !f.locationTakes(tk.loc, p) {
			st = statusUnknownIssuer
		}
		if st == statusOK {
			st = p.verify(s.Context, s.Upstream, t, nil)
		}
		if st != statusOK {
			if result == statusOK {
				result = st
			}
			continue
		}
		p.admit(s, t, tk)
	}
	return result
}

func (f *Filter) byIssuer(iss string) *provider {
	var anyIssuer *provider
	for _, p := range f.providers {
		if p.issuer == iss {
			return p
		}
		if p.issuer == "" && anyIssuer == nil {
			anyIssuer = p
		}
	}
	return anyIssuer
}

// locationTakes reports whether the token's location is one of p's.
func (f *Filter) locationTakes(l location, p *provider) bool {
	for _, pl := range p.locations {
		if pl == l {
			return true
		}
	}
	return false
}

package filters

import (
	"math/rand/v2"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// Fraction is Envoy's FractionalPercent: Numerator out of Denominator
// (100, 10,000 or 1,000,000). The waypoint has no runtime layer, so a
// RuntimeFractionalPercent is its default_value. Read-only once decoded.
type Fraction struct{ Numerator, Denominator uint64 }

// DecodeFraction reads a FractionalPercent; nil is 0%, as Envoy takes an
// absent percentage. Errors are relative to p.
func DecodeFraction(p *typev3.FractionalPercent) (Fraction, error) {
	if p == nil {
		return Fraction{0, 100}, nil
	}
	var den uint64
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10_000
	case typev3.FractionalPercent_MILLION:
		den = 1_000_000
	default:
		return Fraction{}, pbcheck.ErrAt("denominator", "unknown denominator %v", p.GetDenominator())
	}
	return Fraction{Numerator: uint64(p.GetNumerator()), Denominator: den}, nil
}

// Sample draws whether one request is in the fraction: never at 0%,
// always at 100% or more, without drawing.
func (f Fraction) Sample() bool {
	switch {
	case f.Numerator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return rand.Uint64N(f.Denominator) < f.Numerator
}

// Holds reports whether random (a value drawn once, shared by several
// checks, as Envoy's route matching does) falls in the fraction: random %
// Denominator < Numerator.
func (f Fraction) Holds(random uint64) bool { return random%f.Denominator < f.Numerator }

package filters_test

import (
	"strings"
	"testing"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/gowaypoint/waypoint/filters"
)

func TestFraction(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pb      *typev3.FractionalPercent
		want    filters.Fraction
		wantErr string
		always  bool // Sample is always true (else never, when the numerator is 0)
	}{
		{name: "absent is 0%", want: filters.Fraction{Numerator: 0, Denominator: 100}},
		{name: "100 of a hundred", pb: &typev3.FractionalPercent{Numerator: 100}, want: filters.Fraction{Numerator: 100, Denominator: 100}, always: true},
		{name: "over 100%", pb: &typev3.FractionalPercent{Numerator: 20000, Denominator: typev3.FractionalPercent_TEN_THOUSAND},
			want: filters.Fraction{Numerator: 20000, Denominator: 10_000}, always: true},
		{name: "per million", pb: &typev3.FractionalPercent{Numerator: 0, Denominator: typev3.FractionalPercent_MILLION},
			want: filters.Fraction{Numerator: 0, Denominator: 1_000_000}},
		{name: "unknown denominator", pb: &typev3.FractionalPercent{Numerator: 1, Denominator: 7}, wantErr: "denominator: unknown denominator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := filters.DecodeFraction(tc.pb)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f != tc.want {
				t.Fatalf("%+v %v, want %+v", f, err, tc.want)
			}
			for range 100 {
				if f.Sample() != tc.always {
					t.Fatalf("Sample %v, want always %v", !tc.always, tc.always)
				}
			}
		})
	}
	half := filters.Fraction{Numerator: 50, Denominator: 100}
	for _, c := range []struct {
		random uint64
		want   bool
	}{{0, true}, {49, true}, {50, false}, {99, false}, {149, true}, {150, false}} {
		if got := half.Holds(c.random); got != c.want {
			t.Errorf("50%% holds for %d: %v, want %v", c.random, got, c.want)
		}
	}
}

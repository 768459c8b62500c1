package main

import (
	"strings"
	"testing"
)

func TestUpdate(t *testing.T) {
	for _, tc := range []struct {
		name                string
		headroom            Headroom
		runs                int
		min, max            Measurement
		allocs, nbytes      int64
		wantChange, wantErr string
	}{
		{name: "exact, lower", runs: 1, min: Measurement{Allocs: 3, Bytes: 64}, max: Measurement{Allocs: 3, Bytes: 64},
			allocs: 3, nbytes: 64, wantChange: "./p BenchmarkA: allocs/op 5 -> 3, B/op 100 -> 64 (measured 3 allocs, 64 B over 1 runs, headroom exact)"},
		{name: "headroom over the highest run", runs: 10, headroom: Headroom{2, 50}, min: Measurement{Allocs: 2, Bytes: 40}, max: Measurement{Allocs: 4, Bytes: 60},
			allocs: 6, nbytes: 110, wantChange: "allocs/op 5 -> 6, B/op 100 -> 110 (measured 2-4 allocs, 40-60 B over 10 runs, headroom +2,+50)"},
		{name: "unchanged", runs: 1, max: Measurement{Allocs: 5, Bytes: 100}, allocs: 5, nbytes: 100},
		{name: "did not run", allocs: 5, nbytes: 100, wantErr: "did not run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Budget{Pkg: "./p", Name: "BenchmarkA", Allocs: 5, Bytes: 100, Headroom: tc.headroom}
			changes, err := Update(&Budgets{Entries: []*Budget{e}}, []Row{{Budget: e, Runs: tc.runs, Min: tc.min, Max: tc.max}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if e.Allocs != tc.allocs || e.Bytes != tc.nbytes {
				t.Errorf("budget %d allocs, %d B; want %d, %d", e.Allocs, e.Bytes, tc.allocs, tc.nbytes)
			}
			switch {
			case tc.wantChange == "" && len(changes) > 0:
				t.Errorf("changes %q, want none", changes)
			case tc.wantChange != "" && (len(changes) != 1 || !strings.Contains(changes[0], tc.wantChange)):
				t.Errorf("changes %q, want one with %q", changes, tc.wantChange)
			}
		})
	}
}

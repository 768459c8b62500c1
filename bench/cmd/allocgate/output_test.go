package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		procs    int
		want     map[Key][]Measurement
		failed   []Key
		wantErr  string
	}{
		{name: "runs and sub-benchmarks", procs: 2, in: testOutput + "pkg: example.com/m/b/c\nBenchmarkRelay-2 100 1 ns/op 410 B/op 9 allocs/op\n",
			want: map[Key][]Measurement{
				{"example.com/m/a", "BenchmarkParse/fast"}:      {{100, 0, 0}},
				{"example.com/m/a", "BenchmarkParse/reference"}: {{100, 22, 1961}},
				{"example.com/m/b/c", "BenchmarkRelay"}:         {{100, 8, 400}, {100, 9, 410}},
			}},
		{name: "one proc has no suffix", procs: 1, in: "pkg: p\nBenchmarkPick/Random/10 1000 12 ns/op 0 B/op 0 allocs/op\nBenchmarkX-2 1 1 ns/op 1 B/op 1 allocs/op\n",
			want: map[Key][]Measurement{
				{"p", "BenchmarkPick/Random/10"}: {{1000, 0, 0}},
				{"p", "BenchmarkX-2"}:            {{1, 1, 1}},
			}},
		{name: "custom metric", procs: 4, in: "pkg: p\nBenchmarkA-4 10 5 ns/op 3.5 hits/op 16 B/op 1 allocs/op\n",
			want: map[Key][]Measurement{{"p", "BenchmarkA"}: {{10, 1, 16}}}},
		{name: "log between name and figures", procs: 2, in: "pkg: p\nBenchmarkA-2   \t2026/11/25 12:00:00 INFO dialing\n     300\t  5 ns/op\t  64 B/op\t  2 allocs/op\n",
			want: map[Key][]Measurement{{"p", "BenchmarkA"}: {{300, 2, 64}}}},
		{name: "failure", procs: 2, in: "pkg: p\n--- FAIL: BenchmarkA-2\n    a_test.go:1: boom\n    --- FAIL: BenchmarkB/sub-2\nFAIL\n",
			want: map[Key][]Measurement{}, failed: []Key{{"p", "BenchmarkA"}, {"p", "BenchmarkB/sub"}}},
		{name: "no benchmem", procs: 2, in: "pkg: p\nBenchmarkA-2 10 5 ns/op\n", wantErr: "line 2: BenchmarkA: no B/op and allocs/op (was -benchmem given?)"},
		{name: "fractional allocs", procs: 2, in: "BenchmarkA-2 10 5 ns/op 1 B/op 0.5 allocs/op\n", wantErr: `line 1: BenchmarkA: allocs/op "0.5": not a number`},
		{name: "odd fields", procs: 2, in: "BenchmarkA-2 10 5 ns/op 1\n", wantErr: "want value-unit pairs"},
		{name: "zero iterations", procs: 2, in: "BenchmarkA-2 0 5 ns/op 1 B/op 1 allocs/op\n", wantErr: `iterations "0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ParseOutput(strings.NewReader(tc.in), tc.procs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out.Results); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.failed, out.Failed); diff != "" {
				t.Errorf("failed (-want +got):\n%s", diff)
			}
			if len(out.Order) != len(out.Results) {
				t.Errorf("order %v does not list each result once", out.Order)
			}
		})
	}
}

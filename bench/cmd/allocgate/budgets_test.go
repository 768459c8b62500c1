package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBudgets(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		wantErr    string
		want       []*Budget
	}{
		{name: "valid", file: testBudgets, want: []*Budget{
			{Pkg: "./a", Name: "BenchmarkParse/fast", Comment: "deterministic", Line: 6},
			{Pkg: "./b/c", Name: "BenchmarkRelay", Allocs: 10, Bytes: 500, Headroom: Headroom{2, 100}, Comment: "crosses a socket", Line: 7},
		}},
		{name: "hash in a name", file: "cpu 1\nbenchtime . 10x\n. BenchmarkX/a#01 1 2 exact #c\n", want: []*Budget{
			{Pkg: ".", Name: "BenchmarkX/a#01", Allocs: 1, Bytes: 2, Comment: "c", Line: 3},
		}},
		{name: "no cpu", file: "benchtime ./a 10x\n", wantErr: "1: no cpu line"},
		{name: "two cpu", file: "cpu 1\ncpu 2\n", wantErr: "2: a second cpu line"},
		{name: "bad cpu", file: "cpu 0\n", wantErr: `1: cpu "0": want a positive integer`},
		{name: "no benchtime", file: "cpu 2\n./a BenchmarkA 0 0 exact\n", wantErr: "2: no benchtime line for ./a"},
		{name: "timed benchtime", file: "cpu 2\nbenchtime ./a 1s\n", wantErr: "2: want benchtime ./PACKAGE Nx (a fixed iteration count)"},
		{name: "two benchtimes", file: "cpu 2\nbenchtime ./a 1x\nbenchtime ./a 2x\n", wantErr: "3: a second benchtime line for ./a"},
		{name: "few fields", file: "cpu 2\nbenchtime ./a 1x\n./a BenchmarkA 0 0\n", wantErr: "3: want ./PACKAGE BenchmarkNAME ALLOCS BYTES HEADROOM, got 4 fields"},
		{name: "bad package", file: "cpu 2\na BenchmarkA 0 0 exact\n", wantErr: `2: package "a": want a directory`},
		{name: "bad name", file: "cpu 2\n./a TestA 0 0 exact\n", wantErr: `2: benchmark "TestA": want a name starting with Benchmark`},
		{name: "negative allocs", file: "cpu 2\n./a BenchmarkA -1 0 exact\n", wantErr: `2: BenchmarkA: allocs "-1": want a count`},
		{name: "bad bytes", file: "cpu 2\n./a BenchmarkA 0 1.5 exact\n", wantErr: `2: BenchmarkA: bytes "1.5": want a count`},
		{name: "bad headroom", file: "cpu 2\n./a BenchmarkA 0 0 +1\n", wantErr: `2: BenchmarkA: headroom "+1": want exact or +ALLOCS,+BYTES`},
		{name: "negative headroom", file: "cpu 2\n./a BenchmarkA 0 0 +1,-1\n", wantErr: `headroom "+1,-1"`},
		{name: "duplicate", file: "cpu 2\nbenchtime ./a 1x\n./a BenchmarkA 0 0 exact\nexclude ./a BenchmarkA\n", wantErr: "4: ./a BenchmarkA is already on line 3"},
		{name: "bad exclude", file: "cpu 2\nexclude ./a\n", wantErr: "2: want exclude ./PACKAGE BenchmarkNAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBudgets([]byte(tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.Entries); diff != "" {
				t.Errorf("budgets (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFormat checks that formatting keeps every line but the budgets'
// as it was and aligns the budgets' columns.
func TestFormat(t *testing.T) {
	b, err := ParseBudgets([]byte(testBudgets))
	if err != nil {
		t.Fatal(err)
	}
	b.Entries[1].Allocs = 1234
	want := `# budgets
cpu 2
benchtime ./a 100x
benchtime ./b/c 100x

./a    BenchmarkParse/fast     0    0  exact    # deterministic
./b/c  BenchmarkRelay       1234  500  +2,+100  # crosses a socket
exclude ./a BenchmarkParse/reference
`
	if diff := cmp.Diff(want, string(b.Format())); diff != "" {
		t.Errorf("formatted (-want +got):\n%s", diff)
	}
	again, err := ParseBudgets(b.Format())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.Entries, again.Entries); diff != "" {
		t.Errorf("formatted file reads back differently (-want +got):\n%s", diff)
	}
}

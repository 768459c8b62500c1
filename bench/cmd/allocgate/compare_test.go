package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFailures(t *testing.T) {
	budget := &Budget{Pkg: "./p", Name: "BenchmarkA", Allocs: 10, Bytes: 1000, Line: 3}
	key := Key{testModule + "/p", "BenchmarkA"}
	for _, tc := range []struct {
		name string
		runs []Measurement
		fail []Key
		want []string
	}{
		{name: "under", runs: []Measurement{{100, 9, 999}}},
		{name: "at the budget", runs: []Measurement{{100, 10, 1000}}},
		{name: "allocs exceeded", runs: []Measurement{{100, 11, 1000}},
			want: []string{"./p BenchmarkA: 11 allocs/op, budget 10 (line 3)"}},
		{name: "bytes exceeded", runs: []Measurement{{100, 10, 1001}},
			want: []string{"./p BenchmarkA: 1001 B/op, budget 1000 (line 3)"}},
		{name: "both exceeded", runs: []Measurement{{100, 12, 2000}},
			want: []string{"./p BenchmarkA: 12 allocs/op, budget 10 (line 3)", "./p BenchmarkA: 2000 B/op, budget 1000 (line 3)"}},
		{name: "one run of several exceeded", runs: []Measurement{{100, 9, 900}, {100, 11, 900}, {100, 10, 900}},
			want: []string{"./p BenchmarkA: 11 allocs/op, budget 10 (line 3)"}},
		{name: "did not run",
			want: []string{"./p BenchmarkA: did not run (no result in go test's output)"}},
		{name: "failed", fail: []Key{key},
			want: []string{"./p BenchmarkA: the benchmark failed (--- FAIL in go test's output)"}},
		{name: "same name in another package", runs: nil, fail: []Key{{testModule + "/q", "BenchmarkA"}},
			want: []string{"./p BenchmarkA: did not run (no result in go test's output)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Budgets{Entries: []*Budget{budget}}
			out := &Output{Results: map[Key][]Measurement{}, Failed: tc.fail}
			if tc.runs != nil {
				out.Results[key] = tc.runs
			}
			rows := Compare(b, out, testModule)
			got := Failures(rows, out, testModule)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
			if rows[0].Exceeded() != (len(tc.runs) > 0 && len(tc.want) > 0) {
				t.Errorf("Exceeded() = %v", rows[0].Exceeded())
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Budget: &Budget{Pkg: "./p", Name: "BenchmarkA", Allocs: 10, Bytes: 100}, Runs: 2, Min: Measurement{Allocs: 8, Bytes: 90}, Max: Measurement{Allocs: 9, Bytes: 99}},
		{Budget: &Budget{Pkg: "./p", Name: "BenchmarkB", Allocs: 0, Bytes: 0}, Runs: 1, Min: Measurement{Allocs: 1}, Max: Measurement{Allocs: 1}},
		{Budget: &Budget{Pkg: "./p", Name: "BenchmarkC", Allocs: 0, Bytes: 0}},
	}
	var b strings.Builder
	WriteTable(&b, rows)
	want := `package  benchmark   allocs/op  budget  B/op   budget  status
./p      BenchmarkA  8-9        10      90-99  100     ok
./p      BenchmarkB  1          0       0      0       OVER BUDGET
./p      BenchmarkC  -          0       -      0       DID NOT RUN
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestUngated(t *testing.T) {
	b, err := ParseBudgets([]byte(testBudgets))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseOutput(strings.NewReader(testOutput+
		"pkg: example.com/m/a\nBenchmarkParse/new-2 1 1 ns/op 0 B/op 0 allocs/op\n"+
		"pkg: example.com/m/other\nBenchmarkElsewhere-2 1 1 ns/op 0 B/op 0 allocs/op\n"), 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{"./a", "BenchmarkParse/new"}}
	if diff := cmp.Diff(want, Ungated(b, out, testModule)); diff != "" {
		t.Errorf("ungated (-want +got):\n%s", diff)
	}
}

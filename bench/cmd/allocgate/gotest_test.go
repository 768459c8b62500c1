package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	b, err := ParseBudgets([]byte(`cpu 2
benchtime ./slow 300x
benchtime ./fast 20000x
benchtime ./fast2 20000x
./fast   BenchmarkParse/a   0 0 exact
./slow   BenchmarkRelay     1 1 exact
./fast   BenchmarkParse/b   0 0 exact
./fast2  BenchmarkHash      0 0 exact
./fast2  BenchmarkX.Y       0 0 exact
`))
	if err != nil {
		t.Fatal(err)
	}
	got := Plan(b)
	want := []Invocation{
		{Benchtime: "20000x", Pkgs: []string{"./fast", "./fast2"}, Pattern: `^(BenchmarkParse|BenchmarkHash|BenchmarkX\.Y)$`},
		{Benchtime: "300x", Pkgs: []string{"./slow"}, Pattern: `^(BenchmarkRelay)$`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
	re := regexp.MustCompile(got[0].Pattern)
	for name, match := range map[string]bool{"BenchmarkParse": true, "BenchmarkHash": true, "BenchmarkHashX": false, "BenchmarkXzY": false} {
		if re.MatchString(name) != match {
			t.Errorf("pattern %s matches %s: %v", got[0].Pattern, name, !match)
		}
	}
	args := got[1].Args(2, time.Minute)
	wantArgs := []string{"test", "-run", "^$", "-bench", "^(BenchmarkRelay)$", "-benchmem", "-benchtime", "300x",
		"-cpu", "2", "-count", "1", "-timeout", "1m0s", "./slow"}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
}

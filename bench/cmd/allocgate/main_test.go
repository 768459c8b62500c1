package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testModule = "example.com/m"

const testBudgets = `# budgets
cpu 2
benchtime ./a 100x
benchtime ./b/c 100x

./a    BenchmarkParse/fast  0  0  exact  # deterministic
./b/c  BenchmarkRelay       10 500 +2,+100 # crosses a socket
exclude ./a BenchmarkParse/reference
`

// testOutput is go test output within testBudgets.
const testOutput = `goos: linux
pkg: example.com/m/a
BenchmarkParse/fast-2         	     100	       449 ns/op	       0 B/op	       0 allocs/op
BenchmarkParse/reference-2    	     100	      3113 ns/op	    1961 B/op	      22 allocs/op
PASS
ok  	example.com/m/a	0.1s
pkg: example.com/m/b/c
BenchmarkRelay-2   	     100	   1025739 ns/op	1022.2 MB/s	     400 B/op	       8 allocs/op
PASS
`

// TestRun runs the command on saved outputs and checks its exit status
// and what it says.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		output   string
		args     []string
		status   int
		want     []string // in stdout and stderr together
		wantFile string   // in the budget file afterwards, if set
	}{
		{name: "within", output: testOutput, status: 0,
			want: []string{"BenchmarkRelay       8          10      400   500     ok", "2 benchmarks within their allocation budgets"}},
		{name: "allocs exceeded", status: 1,
			output: strings.Replace(testOutput, "8 allocs/op", "11 allocs/op", 1),
			want:   []string{"./b/c BenchmarkRelay: 11 allocs/op, budget 10 (line 7)", "OVER BUDGET", "1 of 2 budgets failed"}},
		{name: "bytes exceeded", status: 1,
			output: strings.Replace(testOutput, "0 B/op", "8 B/op", 1),
			want:   []string{"./a BenchmarkParse/fast: 8 B/op, budget 0 (line 6)"}},
		{name: "did not run", status: 1,
			output: strings.Replace(testOutput, "BenchmarkRelay-2", "BenchmarkOther-2", 1),
			want:   []string{"./b/c BenchmarkRelay: did not run", "DID NOT RUN"}},
		{name: "failed", status: 1,
			output: strings.Replace(testOutput, "BenchmarkRelay-2   \t     100\t   1025739 ns/op\t1022.2 MB/s\t     400 B/op\t       8 allocs/op", "--- FAIL: BenchmarkRelay-2\n    bench_test.go:9: refused", 1),
			want:   []string{"./b/c BenchmarkRelay: the benchmark failed"}},
		{name: "unparsable", status: 1,
			output: strings.Replace(testOutput, "400 B/op", "x B/op", 1),
			want:   []string{"line 8: BenchmarkRelay: B/op \"x\": not a number"}},
		{name: "ungated noted", status: 0,
			output: testOutput + "pkg: example.com/m/a\nBenchmarkParse/new-2 100 1 ns/op 0 B/op 0 allocs/op\n",
			want:   []string{"not gated (add a budget or an exclude line): ./a BenchmarkParse/new"}},
		{name: "update", status: 0, args: []string{"-update"},
			output:   strings.Replace(testOutput, "8 allocs/op", "5 allocs/op", 1),
			want:     []string{"./b/c BenchmarkRelay: allocs/op 10 -> 7, B/op 500 -> 500", "2 budgets from 1 run(s), 1 changed"},
			wantFile: "./b/c  BenchmarkRelay       7  500  +2,+100  # crosses a socket\nexclude ./a BenchmarkParse/reference\n"},
		{name: "update refuses a partial run", status: 1, args: []string{"-update"},
			output: strings.Replace(testOutput, "BenchmarkRelay-2", "BenchmarkOther-2", 1),
			want:   []string{"not updating", "./b/c BenchmarkRelay"}, wantFile: testBudgets},
		{name: "fmt", status: 0, args: []string{"-fmt"}, output: "not read",
			wantFile: "./a    BenchmarkParse/fast   0    0  exact    # deterministic\n./b/c  BenchmarkRelay       10  500  +2,+100  # crosses a socket\n"},
		{name: "bad flag", status: 2, args: []string{"-runs", "-1"}, want: []string{"-runs -1 is negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			budgets, in := filepath.Join(dir, "budgets.txt"), filepath.Join(dir, "out.txt")
			if err := os.WriteFile(budgets, []byte(testBudgets), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in, []byte(tc.output), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			args := append([]string{"-budgets", budgets, "-in", in, "-module", testModule}, tc.args...)
			if got := run(context.Background(), args, &out, &out); got != tc.status {
				t.Errorf("exit status %d, want %d; output:\n%s", got, tc.status, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantFile != "" {
				got, err := os.ReadFile(budgets)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(got), tc.wantFile) {
					t.Errorf("budget file lacks %q:\n%s", tc.wantFile, got)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote("go", []string{"test", "-run", "^$", "-bench", "^(BenchmarkA|BenchmarkB)$", "it's"})
	want := `go test -run '^$' -bench '^(BenchmarkA|BenchmarkB)$' 'it'\''s'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestFakeGo runs the command against a stand-in go command: a script that
// answers "list -m" with the module and "test" with saved output.
func TestFakeGo(t *testing.T) {
	for _, tc := range []struct {
		name, test string // the script's answer to "go test ..."
		status     int
		want       []string
	}{
		{name: "pass", test: "cat \"$DIR/out.txt\"", status: 0,
			want: []string{"2 benchmarks within their allocation budgets"}},
		{name: "build failure", test: "echo 'FAIL\texample.com/m/a [build failed]'; exit 1", status: 1,
			want: []string{" test -run '^$' -bench '^(BenchmarkParse|BenchmarkRelay)$' -benchmem -benchtime 100x -cpu 2 -count 1 -timeout 5m0s ./a ./b/c: exit status 1", "[build failed]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			budgets := filepath.Join(dir, "budgets.txt")
			if err := os.WriteFile(budgets, []byte(testBudgets), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "out.txt"), []byte(testOutput), 0o644); err != nil {
				t.Fatal(err)
			}
			script := "#!/bin/sh\nDIR=" + dir + "\ncase \"$1\" in\nlist) echo " + testModule + ";;\ntest) " + tc.test + ";;\nesac\n"
			goCmd := filepath.Join(dir, "go")
			if err := os.WriteFile(goCmd, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if got := run(context.Background(), []string{"-budgets", budgets, "-go", goCmd}, &out, &out); got != tc.status {
				t.Errorf("exit status %d, want %d; output:\n%s", got, tc.status, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

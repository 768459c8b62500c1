// Command allocgate is the allocation gate: it runs the hot-path benchmarks
// named in a budget file (bench/alloc-budgets.txt) with a fixed iteration
// count and fails when one allocates more per op, in allocs/op or B/op,
// than its budget. Allocation counts do not vary with the machine's load,
// so unlike CPU time they can be asserted on a shared CI machine.
//
//	allocgate                 check: print measured vs budget, exit 1 on any excess
//	allocgate -update         measure 10 times, rewrite the budgets as the
//	                          highest figures plus each line's headroom
//	allocgate -in out.txt     check a saved `go test -bench -benchmem` output
//	allocgate -fmt            align the budget file's columns after a hand edit
//
// Exit status: 0 when every budgeted benchmark ran within its budget (or the
// file was updated), 1 when a budget is exceeded, a budgeted benchmark did
// not run, go test failed or its output cannot be parsed, 2 on bad flags.
//
// A measurement is one `go test -run '^$' -bench REGEX -benchmem
// -benchtime Nx -cpu P` per distinct iteration count, never with -race;
// -update makes -runs of them, each a new process as the gate's is, so
// that one-off allocations (package state, pools, buffers made on first
// use) count as they do in the gate. All run from the calling goroutine;
// go test's own -timeout and a context deadline bound each.
//
// The benchmark output is parsed here rather than with x/perf's benchfmt
// because that module is not a dependency of this one, and the gate needs
// only three fields of a line (name, B/op, allocs/op).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// updateRuns is how many measurements -update makes when -runs is not
// given: enough to see the spread of the benchmarks that cross sockets.
const updateRuns = 10

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	budgets string
	update  bool
	fmt     bool
	runs    int
	in      string
	goCmd   string
	module  string
	timeout time.Duration
	verbose bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("allocgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.budgets, "budgets", "bench/alloc-budgets.txt", "the budget file")
	fs.BoolVar(&c.update, "update", false, "rewrite the budgets from a measurement instead of checking them")
	fs.BoolVar(&c.fmt, "fmt", false, "only rewrite the budget file with its columns aligned")
	fs.IntVar(&c.runs, "runs", 0, fmt.Sprintf("measurements, each a go test process per iteration count; the highest figures count (default 1, or %d with -update)", updateRuns))
	fs.StringVar(&c.in, "in", "", "read this saved go test output instead of running the benchmarks")
	fs.StringVar(&c.goCmd, "go", "go", "the go command")
	fs.StringVar(&c.module, "module", "", "the module path the budget file's ./packages are relative to (default: go list -m)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "limit on each go test run")
	fs.BoolVar(&c.verbose, "v", false, "print go test's output as it runs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("allocgate: unexpected arguments %q", fs.Args())
	}
	if c.runs < 0 {
		return c, fmt.Errorf("allocgate: -runs %d is negative", c.runs)
	}
	if c.runs == 0 {
		c.runs = 1
		if c.update {
			c.runs = updateRuns
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	if err := gate(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// gate measures (or reads -in), then checks or updates the budgets.
func gate(ctx context.Context, c config, stdout, stderr io.Writer) error {
	start := time.Now()
	b, err := ReadBudgets(c.budgets)
	if err != nil {
		return err
	}
	if c.fmt {
		return WriteBudgets(c.budgets, b)
	}
	if c.module == "" {
		if c.module, err = modulePath(ctx, c.goCmd); err != nil {
			return err
		}
	}
	var out []byte
	if c.in != "" {
		if out, err = os.ReadFile(c.in); err != nil {
			return fmt.Errorf("allocgate: %w", err)
		}
	} else if out, err = measure(ctx, c, b, stderr); err != nil {
		return err
	}
	parsed, err := ParseOutput(bytes.NewReader(out), b.CPU)
	if err != nil {
		return fmt.Errorf("allocgate: go test output: %w", err)
	}
	rows := Compare(b, parsed, c.module)
	WriteTable(stdout, rows)
	for _, k := range Ungated(b, parsed, c.module) {
		fmt.Fprintf(stdout, "not gated (add a budget or an exclude line): %s %s\n", k.Pkg, k.Name)
	}
	if c.update {
		changes, err := Update(b, rows)
		if err != nil {
			return err
		}
		if err := WriteBudgets(c.budgets, b); err != nil {
			return err
		}
		for _, ch := range changes {
			fmt.Fprintln(stdout, ch)
		}
		fmt.Fprintf(stdout, "allocgate: %s: %d budgets from %d run(s), %d changed (%.1fs)\n",
			c.budgets, len(rows), mostRuns(rows), len(changes), time.Since(start).Seconds())
		return nil
	}
	failures := Failures(rows, parsed, c.module)
	if len(failures) > 0 {
		return fmt.Errorf("allocgate: %d of %d budgets failed (%s):\n  %s",
			len(failures), len(rows), c.budgets, strings.Join(failures, "\n  "))
	}
	fmt.Fprintf(stdout, "allocgate: %d benchmarks within their allocation budgets (%.1fs)\n",
		len(rows), time.Since(start).Seconds())
	return nil
}

// mostRuns is the highest number of runs of any row.
func mostRuns(rows []Row) int {
	n := 0
	for _, r := range rows {
		n = max(n, r.Runs)
	}
	return n
}

// measure runs go test c.runs times per distinct iteration count and
// returns the outputs one after another. A failed go test is an error
// that carries its output.
func measure(ctx context.Context, c config, b *Budgets, stderr io.Writer) ([]byte, error) {
	var all bytes.Buffer
	plan := Plan(b)
	for run := 1; run <= c.runs; run++ {
		if c.runs > 1 {
			fmt.Fprintf(stderr, "allocgate: measurement %d of %d\n", run, c.runs)
		}
		for _, inv := range plan {
			if err := goTest(ctx, c, inv.Args(b.CPU, c.timeout), &all, stderr); err != nil {
				return nil, err
			}
		}
	}
	return all.Bytes(), nil
}

// goTest runs the go command with args and appends its output to all.
func goTest(ctx context.Context, c config, args []string, all *bytes.Buffer, stderr io.Writer) error {
	var buf bytes.Buffer
	var w io.Writer = &buf
	if c.verbose {
		w = io.MultiWriter(&buf, stderr)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.goCmd, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	all.Write(buf.Bytes())
	if err != nil {
		return fmt.Errorf("allocgate: %s: %w\n%s", shellQuote(c.goCmd, args), err, buf.Bytes())
	}
	return nil
}

// modulePath asks the go command for the main module's path.
func modulePath(ctx context.Context, goCmd string) (string, error) {
	out, err := exec.CommandContext(ctx, goCmd, "list", "-m").Output()
	if err != nil {
		return "", fmt.Errorf("allocgate: %s list -m: %w", goCmd, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// shellQuote writes a command line as a shell would take it, for error
// messages that can be pasted into one.
func shellQuote(name string, args []string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		if a != "" && !strings.ContainsAny(a, "^$()|*?[]{}\\'\" \t;&<>") {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Row is one budgeted benchmark beside what its runs measured.
type Row struct {
	Budget *Budget
	// Runs is how many results the output held; 0 if it did not run.
	Runs int
	// Min and Max are the lowest and highest figures over the runs: a
	// budget holds when Max is within it.
	Min, Max Measurement
}

// Exceeded reports whether the row's highest figures are over budget.
func (r Row) Exceeded() bool {
	return r.Runs > 0 && (r.Max.Allocs > r.Budget.Allocs || r.Max.Bytes > r.Budget.Bytes)
}

// importPath is the import path go test prints for a budget file's
// package, a directory relative to the module's root.
func importPath(module, pkg string) string {
	if pkg == "." {
		return module
	}
	return module + "/" + strings.TrimPrefix(pkg, "./")
}

// Compare pairs each budget with its results in out.
func Compare(b *Budgets, out *Output, module string) []Row {
	rows := make([]Row, 0, len(b.Entries))
	for _, e := range b.Entries {
		r := Row{Budget: e}
		for i, m := range out.Results[Key{importPath(module, e.Pkg), e.Name}] {
			if i == 0 {
				r.Min, r.Max = m, m
			}
			r.Min.Allocs, r.Max.Allocs = min(r.Min.Allocs, m.Allocs), max(r.Max.Allocs, m.Allocs)
			r.Min.Bytes, r.Max.Bytes = min(r.Min.Bytes, m.Bytes), max(r.Max.Bytes, m.Bytes)
			r.Runs++
		}
		rows = append(rows, r)
	}
	return rows
}

// Failures lists, one message each, the budgets exceeded, the budgeted
// benchmarks that did not run and the benchmarks that failed.
func Failures(rows []Row, out *Output, module string) []string {
	var msgs []string
	failed := map[Key]bool{}
	for _, k := range out.Failed {
		failed[k] = true
	}
	for _, r := range rows {
		e := r.Budget
		where := e.Pkg + " " + e.Name
		switch {
		case r.Runs == 0 && failed[Key{importPath(module, e.Pkg), e.Name}]:
			msgs = append(msgs, where+": the benchmark failed (--- FAIL in go test's output)")
		case r.Runs == 0:
			msgs = append(msgs, where+": did not run (no result in go test's output)")
		default:
			if r.Max.Allocs > e.Allocs {
				msgs = append(msgs, fmt.Sprintf("%s: %d allocs/op, budget %d (line %d)", where, r.Max.Allocs, e.Allocs, e.Line))
			}
			if r.Max.Bytes > e.Bytes {
				msgs = append(msgs, fmt.Sprintf("%s: %d B/op, budget %d (line %d)", where, r.Max.Bytes, e.Bytes, e.Line))
			}
		}
	}
	return msgs
}

// Ungated lists the benchmarks in out, of the budget file's packages, that
// have neither a budget nor an exclude line: a sub-benchmark added to a
// gated benchmark, for example.
func Ungated(b *Budgets, out *Output, module string) []Key {
	known := map[Key]bool{}
	pkgs := map[string]string{}
	for _, e := range b.Entries {
		known[Key{e.Pkg, e.Name}] = true
		pkgs[importPath(module, e.Pkg)] = e.Pkg
	}
	for _, e := range b.Excluded {
		known[Key{e.Pkg, e.Name}] = true
	}
	var keys []Key
	for _, k := range out.Order {
		if dir, ok := pkgs[k.Pkg]; ok && !known[Key{dir, k.Name}] {
			keys = append(keys, Key{dir, k.Name})
		}
	}
	return keys
}

// WriteTable prints measured figures beside budgets, one row each; a range
// when several runs differed.
func WriteTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "package\tbenchmark\tallocs/op\tbudget\tB/op\tbudget\tstatus")
	for _, r := range rows {
		e := r.Budget
		status, allocs, nbytes := "ok", "-", "-"
		switch {
		case r.Runs == 0:
			status = "DID NOT RUN"
		case r.Exceeded():
			status = "OVER BUDGET"
		}
		if r.Runs > 0 {
			allocs, nbytes = span(r.Min.Allocs, r.Max.Allocs), span(r.Min.Bytes, r.Max.Bytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", e.Pkg, e.Name, allocs, e.Allocs, nbytes, e.Bytes, status)
	}
	tw.Flush()
}

func span(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprint(hi)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

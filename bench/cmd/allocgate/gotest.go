package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Invocation is one go test run: the packages that share an iteration
// count, and a -bench pattern that selects their budgeted benchmarks.
type Invocation struct {
	Benchtime string
	Pkgs      []string
	// Pattern matches the budgeted benchmarks' top-level names, so that
	// all of their sub-benchmarks run (references among them; those are
	// not gated). A pattern with a "/" level would skip every top-level
	// benchmark that has no sub-benchmarks.
	Pattern string
}

// Plan groups the budgeted packages by iteration count, in file order.
func Plan(b *Budgets) []Invocation {
	var invs []Invocation
	index := map[string]int{} // benchtime → invs index
	names := map[string][]string{}
	for _, e := range b.Entries {
		bt := b.Benchtime[e.Pkg]
		i, ok := index[bt]
		if !ok {
			i = len(invs)
			index[bt] = i
			invs = append(invs, Invocation{Benchtime: bt})
		}
		if !slices.Contains(invs[i].Pkgs, e.Pkg) {
			invs[i].Pkgs = append(invs[i].Pkgs, e.Pkg)
		}
		top, _, _ := strings.Cut(e.Name, "/")
		if !slices.Contains(names[bt], top) {
			names[bt] = append(names[bt], top)
		}
	}
	for i := range invs {
		quoted := names[invs[i].Benchtime]
		for j, n := range quoted {
			quoted[j] = regexp.QuoteMeta(n)
		}
		invs[i].Pattern = "^(" + strings.Join(quoted, "|") + ")$"
	}
	return invs
}

// Args is go test's command line for the invocation: no tests, a fixed
// iteration count, one run, no race detector (it changes allocation
// counts).
func (inv Invocation) Args(cpu int, timeout time.Duration) []string {
	args := []string{"test", "-run", "^$", "-bench", inv.Pattern, "-benchmem",
		"-benchtime", inv.Benchtime, "-cpu", fmt.Sprint(cpu), "-count", "1",
		"-timeout", timeout.String()}
	return append(args, inv.Pkgs...)
}

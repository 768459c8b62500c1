package main

import (
	"errors"
	"fmt"
	"strings"
)

// Update sets each budget to the highest figures its row measured plus
// the budget's headroom, and returns one line per changed budget. It
// changes nothing and fails when a budgeted benchmark did not run, so a
// partial measurement never rewrites the file.
func Update(b *Budgets, rows []Row) ([]string, error) {
	var missing []string
	for _, r := range rows {
		if r.Runs == 0 {
			missing = append(missing, r.Budget.Pkg+" "+r.Budget.Name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("allocgate: not updating, these budgeted benchmarks did not run (delete their lines if they are gone):\n  " +
			strings.Join(missing, "\n  "))
	}
	var changes []string
	for _, r := range rows {
		e := r.Budget
		allocs := r.Max.Allocs + e.Headroom.Allocs
		nbytes := r.Max.Bytes + e.Headroom.Bytes
		if allocs != e.Allocs || nbytes != e.Bytes {
			changes = append(changes, fmt.Sprintf("%s %s: allocs/op %d -> %d, B/op %d -> %d (measured %s allocs, %s B over %d runs, headroom %s)",
				e.Pkg, e.Name, e.Allocs, allocs, e.Bytes, nbytes,
				span(r.Min.Allocs, r.Max.Allocs), span(r.Min.Bytes, r.Max.Bytes), r.Runs, e.Headroom))
		}
		e.Allocs, e.Bytes = allocs, nbytes
	}
	return changes, nil
}

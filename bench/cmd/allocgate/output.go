package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Key names one benchmark of one package. In parsed output Pkg is the
// import path go test prints after "pkg:".
type Key struct {
	Pkg, Name string
}

// Measurement is one run's figures of one benchmark.
type Measurement struct {
	N             int64 // iterations
	Allocs, Bytes int64 // allocs/op and B/op
}

// Output is what ParseOutput found in go test's output.
type Output struct {
	// Results holds every run of each benchmark, in output order.
	Results map[Key][]Measurement
	// Order lists the benchmarks as they first appeared.
	Order []Key
	// Failed lists the benchmarks that reported "--- FAIL".
	Failed []Key
}

// maxOutputLine bounds one line of go test output; benchmark lines are
// short, but a test's log line may not be.
const maxOutputLine = 1 << 20

// ParseOutput reads `go test -bench -benchmem` output run with -cpu procs.
// Lines that are not benchmark results (headers, logs, PASS, ok) are
// skipped; a benchmark line whose figures cannot be read, or that lacks
// B/op or allocs/op, is an error naming the line. A benchmark name
// followed by log output has its figures on a later line: they are
// attached to it.
func ParseOutput(r io.Reader, procs int) (*Output, error) {
	out := &Output{Results: map[Key][]Measurement{}}
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxOutputLine)
	pkg, pending := "", ""
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg, pending = strings.TrimSpace(p), ""
			continue
		}
		if f[0] == "---" && len(f) >= 3 && f[1] == "FAIL:" && isBenchmark(f[2]) {
			out.Failed = append(out.Failed, Key{pkg, strings.TrimSuffix(f[2], suffix)})
			pending = ""
			continue
		}
		name, figures := "", f
		switch {
		case isBenchmark(f[0]):
			name, figures = strings.TrimSuffix(f[0], suffix), f[1:]
			if len(figures) == 0 || !isCount(figures[0]) {
				pending = name // log output follows the name
				continue
			}
		case pending != "" && len(f) >= 3 && isCount(f[0]) && strings.HasSuffix(f[2], "/op"):
			name = pending
		default:
			continue
		}
		pending = ""
		m, err := parseFigures(figures)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, name, err)
		}
		k := Key{pkg, name}
		if _, ok := out.Results[k]; !ok {
			out.Order = append(out.Order, k)
		}
		out.Results[k] = append(out.Results[k], m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func isCount(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// parseFigures reads "N  V unit  V unit ...", as testing.BenchmarkResult
// prints it.
func parseFigures(f []string) (Measurement, error) {
	var m Measurement
	var err error
	if m.N, err = strconv.ParseInt(f[0], 10, 64); err != nil || m.N <= 0 {
		return m, fmt.Errorf("iterations %q: want a positive count", f[0])
	}
	if len(f)%2 != 1 {
		return m, fmt.Errorf("%q: want value-unit pairs after the iterations", strings.Join(f, " "))
	}
	var sawAllocs, sawBytes bool
	for i := 1; i+1 < len(f); i += 2 {
		v, unit := f[i], f[i+1]
		switch unit {
		case "allocs/op":
			m.Allocs, err = strconv.ParseInt(v, 10, 64)
			sawAllocs = true
		case "B/op":
			m.Bytes, err = strconv.ParseInt(v, 10, 64)
			sawBytes = true
		default:
			_, err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			return m, fmt.Errorf("%s %q: not a number", unit, v)
		}
	}
	if !sawAllocs || !sawBytes {
		return m, fmt.Errorf("no B/op and allocs/op (was -benchmem given?)")
	}
	return m, nil
}

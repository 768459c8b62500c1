package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Budgets is a parsed budget file. Lines other than budget lines are kept
// verbatim, so that WriteBudgets changes only the budgets' figures (and
// their column alignment).
//
// The file's lines, each one of:
//
//	# comment
//	cpu P                                   -cpu for go test (GOMAXPROCS), once
//	benchtime PACKAGE Nx                    -benchtime of PACKAGE's benchmarks, once each
//	exclude PACKAGE BENCHMARK [# why]       a benchmark that runs but is not gated
//	PACKAGE BENCHMARK ALLOCS BYTES HEADROOM [# comment]
//
// PACKAGE is a directory relative to the module root ("./proxy/hbone");
// BENCHMARK is the full name without the -P suffix ("BenchmarkX/sub");
// ALLOCS and BYTES are the highest allocs/op and B/op allowed; HEADROOM is
// "exact" or "+A,+B": what -update adds to the highest measured figures.
type Budgets struct {
	// CPU is the GOMAXPROCS of every run: parallel benchmarks' allocation
	// counts depend on it, so it is fixed rather than the machine's.
	CPU int
	// Benchtime maps a package to its fixed iteration count ("300x").
	Benchtime map[string]string
	// Entries are the budgets in file order.
	Entries []*Budget
	// Excluded are the exclude lines in file order.
	Excluded []Exclude

	lines []line
}

// Budget is one gated benchmark.
type Budget struct {
	Pkg, Name     string
	Allocs, Bytes int64
	Headroom      Headroom
	Comment       string // without the "#"; empty if none
	Line          int
}

// Exclude is a benchmark that is measured but not gated (a reference).
type Exclude struct {
	Pkg, Name string
}

// Headroom is what -update adds to the highest measured allocs/op and
// B/op of a benchmark to make its budget: zero ("exact") for benchmarks
// whose counts do not vary between runs.
type Headroom struct {
	Allocs, Bytes int64
}

// String is the headroom as the file writes it: exact or +A,+B.
func (h Headroom) String() string {
	if h == (Headroom{}) {
		return "exact"
	}
	return fmt.Sprintf("+%d,+%d", h.Allocs, h.Bytes)
}

func parseHeadroom(s string) (Headroom, error) {
	if s == "exact" {
		return Headroom{}, nil
	}
	a, b, ok := strings.Cut(s, ",")
	if !ok || !strings.HasPrefix(a, "+") || !strings.HasPrefix(b, "+") {
		return Headroom{}, fmt.Errorf("headroom %q: want exact or +ALLOCS,+BYTES", s)
	}
	allocs, err1 := strconv.ParseInt(a[1:], 10, 64)
	nbytes, err2 := strconv.ParseInt(b[1:], 10, 64)
	if err1 != nil || err2 != nil || allocs < 0 || nbytes < 0 {
		return Headroom{}, fmt.Errorf("headroom %q: want exact or +ALLOCS,+BYTES", s)
	}
	return Headroom{allocs, nbytes}, nil
}

// line is one line of the file: a budget, or text kept as it is.
type line struct {
	text   string
	budget *Budget
}

// maxBudgetFile bounds the budget file; it holds about a hundred lines.
const maxBudgetFile = 1 << 20

var fixedCount = regexp.MustCompile(`^[1-9][0-9]*x$`)

// ReadBudgets reads and parses the budget file at path.
func ReadBudgets(path string) (*Budgets, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("allocgate: %w", err)
	}
	if len(data) > maxBudgetFile {
		return nil, fmt.Errorf("allocgate: %s: %d bytes, more than %d", path, len(data), maxBudgetFile)
	}
	b, err := ParseBudgets(data)
	if err != nil {
		return nil, fmt.Errorf("allocgate: %s:%w", path, err)
	}
	return b, nil
}

// ParseBudgets parses a budget file's contents. Errors start with the
// line number.
func ParseBudgets(data []byte) (*Budgets, error) {
	b := &Budgets{Benchtime: map[string]string{}}
	seen := map[Exclude]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		body, comment := splitComment(text)
		f := strings.Fields(body)
		l := line{text: text}
		switch {
		case len(f) == 0:
		case f[0] == "cpu":
			if len(f) != 2 {
				return nil, fmt.Errorf("%d: want cpu P, got %q", n, body)
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p < 1 {
				return nil, fmt.Errorf("%d: cpu %q: want a positive integer", n, f[1])
			}
			if b.CPU != 0 {
				return nil, fmt.Errorf("%d: a second cpu line", n)
			}
			b.CPU = p
		case f[0] == "benchtime":
			if len(f) != 3 || !isPackage(f[1]) || !fixedCount.MatchString(f[2]) {
				return nil, fmt.Errorf("%d: want benchtime ./PACKAGE Nx (a fixed iteration count), got %q", n, body)
			}
			if _, dup := b.Benchtime[f[1]]; dup {
				return nil, fmt.Errorf("%d: a second benchtime line for %s", n, f[1])
			}
			b.Benchtime[f[1]] = f[2]
		case f[0] == "exclude":
			if len(f) != 3 || !isPackage(f[1]) || !isBenchmark(f[2]) {
				return nil, fmt.Errorf("%d: want exclude ./PACKAGE BenchmarkNAME, got %q", n, body)
			}
			e := Exclude{f[1], f[2]}
			if prev, dup := seen[e]; dup {
				return nil, fmt.Errorf("%d: %s %s is already on line %d", n, e.Pkg, e.Name, prev)
			}
			seen[e] = n
			b.Excluded = append(b.Excluded, e)
		default:
			bu, err := parseBudget(f, comment, n)
			if err != nil {
				return nil, fmt.Errorf("%d: %w", n, err)
			}
			e := Exclude{bu.Pkg, bu.Name}
			if prev, dup := seen[e]; dup {
				return nil, fmt.Errorf("%d: %s %s is already on line %d", n, e.Pkg, e.Name, prev)
			}
			seen[e] = n
			b.Entries = append(b.Entries, bu)
			l.budget = bu
		}
		b.lines = append(b.lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%d: %w", n+1, err)
	}
	if b.CPU == 0 {
		return nil, fmt.Errorf("%d: no cpu line", n)
	}
	for _, e := range b.Entries {
		if _, ok := b.Benchtime[e.Pkg]; !ok {
			return nil, fmt.Errorf("%d: no benchtime line for %s", e.Line, e.Pkg)
		}
	}
	return b, nil
}

func parseBudget(f []string, comment string, n int) (*Budget, error) {
	if len(f) != 5 {
		return nil, fmt.Errorf("want ./PACKAGE BenchmarkNAME ALLOCS BYTES HEADROOM, got %d fields", len(f))
	}
	if !isPackage(f[0]) {
		return nil, fmt.Errorf("package %q: want a directory like ./proxy/hbone", f[0])
	}
	if !isBenchmark(f[1]) {
		return nil, fmt.Errorf("benchmark %q: want a name starting with Benchmark", f[1])
	}
	allocs, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || allocs < 0 {
		return nil, fmt.Errorf("%s: allocs %q: want a count", f[1], f[2])
	}
	nbytes, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || nbytes < 0 {
		return nil, fmt.Errorf("%s: bytes %q: want a count", f[1], f[3])
	}
	h, err := parseHeadroom(f[4])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f[1], err)
	}
	return &Budget{Pkg: f[0], Name: f[1], Allocs: allocs, Bytes: nbytes, Headroom: h, Comment: comment, Line: n}, nil
}

// splitComment splits a line at its first "#" that starts the line or
// follows white space: benchmark names may hold a "#" (Go's suffix for
// duplicate sub-benchmark names) but never white space.
func splitComment(s string) (body, comment string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i], strings.TrimSpace(s[i+1:])
		}
	}
	return s, ""
}

func isPackage(s string) bool { return s == "." || strings.HasPrefix(s, "./") }

func isBenchmark(s string) bool { return strings.HasPrefix(s, "Benchmark") }

// Format returns the file with every budget line written from its
// Budget, in aligned columns; every other line is as it was read.
func (b *Budgets) Format() []byte {
	var wPkg, wName, wAllocs, wBytes, wHead int
	for _, e := range b.Entries {
		wPkg = max(wPkg, len(e.Pkg))
		wName = max(wName, len(e.Name))
		wAllocs = max(wAllocs, len(strconv.FormatInt(e.Allocs, 10)))
		wBytes = max(wBytes, len(strconv.FormatInt(e.Bytes, 10)))
		wHead = max(wHead, len(e.Headroom.String()))
	}
	var out bytes.Buffer
	for _, l := range b.lines {
		e := l.budget
		if e == nil {
			out.WriteString(l.text)
			out.WriteByte('\n')
			continue
		}
		s := fmt.Sprintf("%-*s  %-*s  %*d  %*d  %-*s", wPkg, e.Pkg, wName, e.Name,
			wAllocs, e.Allocs, wBytes, e.Bytes, wHead, e.Headroom)
		if e.Comment != "" {
			s += "  # " + e.Comment
		}
		out.WriteString(strings.TrimRight(s, " "))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// WriteBudgets writes b to path through a temporary file in the same
// directory, so that an interrupted update leaves the old file.
func WriteBudgets(path string, b *Budgets) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".alloc-budgets-*")
	if err != nil {
		return fmt.Errorf("allocgate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Format()); err != nil {
		tmp.Close()
		return fmt.Errorf("allocgate: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("allocgate: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("allocgate: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("allocgate: %w", err)
	}
	return nil
}

// Command benchtable reads `go test -bench` output (several -count runs of
// each benchmark) and prints a Markdown table of medians, each with its
// ratio to a reference benchmark measured in the same run.
//
//	go test -bench . -benchmem -count 5 ./... | benchtable -ref BenchmarkA=BenchmarkRefA -ref ...
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

type refs map[string]string

func (r refs) String() string { return fmt.Sprint(map[string]string(r)) }

func (r refs) Set(v string) error {
	name, ref, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want Benchmark=ReferenceBenchmark, got %q", v)
	}
	r[name] = ref
	return nil
}

// result holds every run's figures of one benchmark.
type result struct {
	ns, mbs      []float64
	bytes, alloc string
}

func main() {
	references := refs{}
	pairs := refs{}
	flag.Var(references, "ref", "Benchmark=Reference: print Benchmark's ns/op as a ratio to Reference's (repeatable)")
	flag.Var(pairs, "pair", "sub=refsub: a benchmark whose last name element is sub is compared with the same name ending in refsub (repeatable)")
	flag.Parse()
	results, order := parse(os.Stdin)
	addPairs(references, pairs, order)
	write(os.Stdout, results, order, references)
}

// addPairs adds a reference for every benchmark whose last name element is
// a pair's key: the same name with the pair's value instead.
func addPairs(references, pairs refs, order []string) {
	for _, name := range order {
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			continue
		}
		if ref, ok := pairs[name[i+1:]]; ok {
			if _, set := references[name]; !set {
				references[name] = name[:i+1] + ref
			}
		}
	}
}

func parse(r io.Reader) (map[string]*result, []string) {
	results := map[string]*result{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		res := results[name]
		if res == nil {
			res = &result{}
			results[name] = res
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				res.ns = append(res.ns, v)
			case "MB/s":
				res.mbs = append(res.mbs, v)
			case "B/op":
				res.bytes = f[i]
			case "allocs/op":
				res.alloc = f[i]
			}
		}
	}
	return results, order
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func write(w io.Writer, results map[string]*result, order []string, references refs) {
	fmt.Fprintln(w, "| benchmark | runs | median ns/op | MB/s | B/op | allocs/op | reference | ratio to reference |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, name := range order {
		res := results[name]
		mbs, ratio := "", ""
		if len(res.mbs) > 0 {
			mbs = fmt.Sprintf("%.0f", median(res.mbs))
		}
		ref := references[name]
		if r, ok := results[ref]; ok && median(r.ns) > 0 {
			ratio = fmt.Sprintf("%.2fx", median(res.ns)/median(r.ns))
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %s | %s | %s |\n",
			strings.TrimPrefix(name, "Benchmark"), len(res.ns), median(res.ns), mbs, res.bytes, res.alloc,
			strings.TrimPrefix(ref, "Benchmark"), ratio)
	}
}

package main

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	in := `goos: linux
BenchmarkRef-2   	100	 100 ns/op	 10 B/op	 1 allocs/op
BenchmarkFast-2  	100	 150 ns/op	 2000.5 MB/s	 0 B/op	 0 allocs/op
BenchmarkRef-2   	100	 300 ns/op	 10 B/op	 1 allocs/op
BenchmarkFast-2  	100	 450 ns/op	 1000.5 MB/s	 0 B/op	 0 allocs/op
BenchmarkRef-2   	100	 200 ns/op	 10 B/op	 1 allocs/op
BenchmarkFast-2  	100	 300 ns/op	 1500 MB/s	 0 B/op	 0 allocs/op
BenchmarkMatch/tree-2 	100	 99 ns/op	 0 B/op	 0 allocs/op
PASS`
	results, order := parse(strings.NewReader(in))
	var b strings.Builder
	write(&b, results, order, refs{"BenchmarkFast": "BenchmarkRef"})
	for _, want := range []string{
		"| Ref | 3 | 200 |  | 10 | 1 |  |  |",
		"| Fast | 3 | 300 | 1500 | 0 | 0 | Ref | 1.50x |",
		"| Match/tree | 1 | 99 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPairs(t *testing.T) {
	in := `BenchmarkRead/http1-2 100 50 ns/op
BenchmarkRead/net-http-2 100 200 ns/op
`
	results, order := parse(strings.NewReader(in))
	references := refs{}
	addPairs(references, refs{"http1": "net-http"}, order)
	var b strings.Builder
	write(&b, results, order, references)
	if !strings.Contains(b.String(), "| Read/http1 | 1 | 50 |  |  |  | Read/net-http | 0.25x |") {
		t.Errorf("pair not compared:\n%s", b.String())
	}
}

package replay

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	cases := []struct {
		name    string
		prefix  []string // Unread in this order
		stream  string
		want    string
		readLen int
	}{
		{name: "nothing put back", stream: "stream", want: "stream", readLen: 4},
		{name: "prefix then stream", prefix: []string{"PRI * "}, stream: "HTTP/2.0", want: "PRI * HTTP/2.0", readLen: 4},
		{name: "one byte reads", prefix: []string{"\xda\xbb"}, stream: "frame", want: "\xda\xbbframe", readLen: 1},
		{name: "put back twice", prefix: []string{"cd", "ab"}, stream: "ef", want: "abcdef", readLen: 3},
		{name: "empty prefix", prefix: []string{""}, stream: "x", want: "x", readLen: 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Reader{R: strings.NewReader(c.stream)}
			for _, p := range c.prefix {
				r.Unread([]byte(p))
			}
			var got []byte
			buf := make([]byte, c.readLen)
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if string(got) != c.want {
				t.Errorf("read %q, want %q", got, c.want)
			}
			if r.Buffered() != 0 {
				t.Errorf("Buffered = %d after the end", r.Buffered())
			}
		})
	}
}

// TestReaderIsAReader runs the standard reader checks over a prefix and a
// stream.
func TestReaderIsAReader(t *testing.T) {
	if err := iotest.TestReader(NewReader([]byte("hello, "), strings.NewReader("world")), []byte("hello, world")); err != nil {
		t.Fatal(err)
	}
}

// TestReadAllocatesNothing: replaying a prefix and reading on costs no
// allocation (the reads of a connection's hot path go through it).
func TestReadAllocatesNothing(t *testing.T) {
	prefix := []byte("GET / HTTP/1.1\r\n")
	src := strings.NewReader("")
	r := &Reader{}
	buf := make([]byte, 8)
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset("Host: a\r\n\r\n")
		r.R = src
		r.Unread(prefix)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per replay, want 0", allocs)
	}
}

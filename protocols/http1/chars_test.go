package http1

import (
	"math/rand/v2"
	"testing"
)

// TestValidValue checks the eight-at-a-time check against the byte loop,
// with every octet at every position of a 17-byte value.
func TestValidValue(t *testing.T) {
	v := make([]byte, 17)
	for pos := range v {
		for c := 0; c < 256; c++ {
			for i := range v {
				v[i] = 'a'
			}
			v[pos] = byte(c)
			if got, want := validValue(v), validValueSlow(v); got != want {
				t.Fatalf("octet %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if got, want := validValue(b), validValueSlow(b); got != want {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"007", 7, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"1 ", 0, false},
		{"1_0", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDecimal([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseDecimal(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseChunkSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1a", 26, true},
		{"FF", 255, true},
		{"0000000000000000000010", 16, true},
		{"7fffffffffffffff", 1<<63 - 1, true},
		{"8000000000000000", 0, false},
		{"a;ext", 10, true},
		{"a ; ext=\"q s\"", 10, true},
		{"a ", 0, false},
		{"a x", 0, false},
		{"", 0, false},
		{";x", 0, false},
		{"-1", 0, false},
		{"a;\x00", 0, false},
	}
	for _, tt := range tests {
		got, err := parseChunkSize("body", []byte(tt.in))
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

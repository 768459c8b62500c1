package xxhash

import (
	"math"
	"testing"
)

func TestXXHash64(t *testing.T) {
	s63 := "Call me Ishmael. Some years ago--never mind how long precisely-"
	for _, tc := range []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xef46db3751d8e999},
		{"a", 0, 0xd24ec4f1a98c6e5b},
		{"as", 0, 0x1c330fb2d66be179},
		{"asd", 0, 0x631c37ce72a97393},
		{"asdf", 0, 0x415872f599cea71e},
		{s63, 0, 0x02a2e85470d6fd96},
		{"", 123, 0xe0db84de91f3e198},
		{"asdf", math.MaxUint64, 0x9a2fd8473be539b6},
		{s63, 54321, 0x1736d186daf5d1cd},
	} {
		if got := Sum64([]byte(tc.in), tc.seed); got != tc.want {
			t.Errorf("Sum64(%q, %d) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
	}
}

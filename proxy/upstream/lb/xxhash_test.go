package lb

import (
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestEnvoyXXHash64 pins the hashes that place hosts on the ring and in the
// Maglev table to XXH64's reference values, with the seeds Envoy uses.
func TestEnvoyXXHash64(t *testing.T) {
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
		if got := sum64Seed(tc.in, tc.seed); got != tc.want {
			t.Errorf("sum64Seed(%q, %d) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
		if tc.seed == 0 {
			if got := xxhash.Sum64([]byte(tc.in)); got != tc.want {
				t.Errorf("xxhash.Sum64(%q) = %#x, want %#x", tc.in, got, tc.want)
			}
		}
	}
}

package hostinfo

import (
	"strconv"
	"strings"
	"testing"
)

func TestLoadAverage(t *testing.T) {
	for n := 1; n <= 3; n++ {
		got := LoadAverage(n)
		f := strings.Fields(got)
		if len(f) != n {
			t.Fatalf("LoadAverage(%d) = %q, want %d figures", n, got, n)
		}
		for _, v := range f {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				t.Errorf("LoadAverage(%d) = %q: %v", n, got, err)
			}
		}
	}
	if got := LoadAverage(4); got != "?" {
		t.Errorf("LoadAverage(4) = %q, want ?", got)
	}
}

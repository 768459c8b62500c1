package memtest

import "testing"

func TestRSSAndFDLimit(t *testing.T) {
	if n := RaiseFDLimit(t); n < 64 {
		t.Errorf("open-files limit %d after raising it", n)
	}
	before := RSS(t)
	if before <= 0 {
		t.Fatalf("RSS %d", before)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1
	}
	if after := RSS(t); after < before+32<<20 {
		t.Errorf("RSS %d after touching 64 MiB, %d before: want it to grow by most of that", after, before)
	}
	_ = b[len(b)-1]
}

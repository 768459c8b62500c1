package accesslog

import (
	"testing"
	"time"
)

func TestAppendStartTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 1, 23, 4, 5, 678_900_000, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 6, 30, 0, 0, 59, 999_999_999, time.FixedZone("X", -7*3600)),
		time.Date(12345, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
		time.Unix(0, 0),
	} {
		want := tm.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z")
		if got := appendStartTime(nil, tm); string(got) != string(want) {
			t.Errorf("appendStartTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkAppendStartTime(b *testing.B) {
	tm := time.Date(2026, 12, 1, 23, 4, 5, 678_900_000, time.UTC)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for range b.N {
		buf = appendStartTime(buf[:0], tm)
	}
}

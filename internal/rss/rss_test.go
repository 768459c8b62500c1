package rss

import (
	"strconv"
	"testing"

	"github.com/gowaypoint/waypoint/internal/memtest"
)

func TestTrimBinary(t *testing.T) {
	before := memtest.FileRSS(t)
	n, err := TrimBinary()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no read-only mapping of the executable was advised")
	}
	after := memtest.FileRSS(t)
	// The test binary keeps running on the pages it faults back in; what
	// it had faulted in before (its packages' init, the testing package)
	// must mostly be gone.
	if after >= before {
		t.Fatalf("file-backed resident pages: %d KiB before, %d KiB after", before>>10, after>>10)
	}
	t.Logf("file-backed resident pages: %d KiB before, %d KiB after (%d KiB of mappings advised)", before>>10, after>>10, n>>10)
	// Code and read-only data still work: format something.
	if s := strconv.Quote("still running"); s != `"still running"` {
		t.Fatal(s)
	}
}

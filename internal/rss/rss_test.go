package rss

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// fileRSS is the resident size of the process's file-backed pages, from
// /proc/self/smaps_rollup, in KiB.
func fileRSS(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		t.Skipf("no smaps_rollup: %v", err) // not Linux: nothing to trim
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss_File:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Pss_File in smaps_rollup")
	return 0
}

func TestTrimBinary(t *testing.T) {
	before := fileRSS(t)
	n, err := TrimBinary()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no read-only mapping of the executable was advised")
	}
	after := fileRSS(t)
	// The test binary keeps running on the pages it faults back in; what
	// it had faulted in before (its packages' init, the testing package)
	// must mostly be gone.
	if after >= before {
		t.Fatalf("file-backed resident pages: %d KiB before, %d KiB after", before, after)
	}
	t.Logf("file-backed resident pages: %d KiB before, %d KiB after (%d KiB of mappings advised)", before, after, n>>10)
	// Code and read-only data still work: format something.
	if s := strconv.Quote("still running"); s != `"still running"` {
		t.Fatal(s)
	}
}

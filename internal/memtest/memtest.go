// Package memtest holds what the tests measuring memory per connection or
// per stream share: a higher open-files limit, so that they can hold
// thousands, and the process's resident set. Linux only (/proc), as the
// tests that use it.
package memtest

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// RaiseFDLimit raises the process's soft limit of open files to the hard
// one and returns it.
func RaiseFDLimit(t testing.TB) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Cur
}

// RSS is the process's resident set in bytes (/proc/self/statm).
func RSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		t.Fatalf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("/proc/self/statm: %v", err)
	}
	return pages * int64(os.Getpagesize())
}

// LiveHeap is the heap in use after two full collections (the second
// frees what the first's finalizers let go), in bytes.
func LiveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// FileRSS is the process's resident file-backed pages in bytes: its
// binary's code and read-only data among them (RssFile of
// /proc/self/status).
func FileRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/status: %q: %v", line, err)
			}
			return kib << 10
		}
	}
	t.Fatal("/proc/self/status: no RssFile")
	return 0
}

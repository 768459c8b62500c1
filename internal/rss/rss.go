// Package rss trims the resident set of the running binary.
//
// Starting a Go binary of this size faults in far more of its read-only
// pages than it will use: package initialization (protobuf descriptors
// among others) touches code and data once, and the kernel maps 64 KiB
// around each page fault (fault-around). Those clean, file-backed pages
// stay in the resident set though nothing needs them. TrimBinary advises
// the kernel to read the binary's read-only mappings page by page from
// now on (MADV_RANDOM: no fault-around) and drops their resident pages
// (MADV_DONTNEED, safe on mappings that are never written): what the
// proxy really runs faults back in, one page at a time, from the page
// cache.
package rss

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// TrimBinary drops the resident read-only pages of the executable's own
// mappings and returns how many bytes of mappings it advised. Errors are
// returned, never fatal: the process runs the same without the trim.
func TrimBinary() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		n := uintptr(end - start)
		for _, advice := range []uintptr{syscall.MADV_RANDOM, syscall.MADV_DONTNEED} {
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), n, advice); e != 0 {
				return total, e
			}
		}
		total += int64(n)
	}
	return total, sc.Err()
}

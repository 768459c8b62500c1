// Package hostinfo reads what the bench tools report about the machine
// they ran on, beside their figures (these machines are shared: the load
// average tells how quiet a run was), and sets the one process limit they
// need raised.
package hostinfo

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// LoadAverage returns the first n of the load averages (1, 5 and 15
// minutes; n from 1 to 3) as /proc/loadavg gives them, space-separated;
// "?" when they cannot be read.
func LoadAverage(n int) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if n < 1 || n > 3 || len(f) < n {
		return "?"
	}
	return strings.Join(f[:n], " ")
}

// RaiseNoFile lifts RLIMIT_NOFILE as far as the kernel allows (the hard
// limit too, up to fs.nr_open, when privileged); children started after
// it inherit it. It returns the soft limit in force.
func RaiseNoFile() uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	want := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var n uint64
		if _, err := fmt.Sscan(string(b), &n); err == nil && n > 0 && n < want {
			want = n
		}
	}
	if want > lim.Max {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want
		}
	}
	// Setting it explicitly, even unchanged, makes os/exec pass it on.
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// Package hostinfo reads what the bench tools report about the machine
// they ran on, beside their figures (these machines are shared: the load
// average tells how quiet a run was).
package hostinfo

import (
	"os"
	"strings"
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

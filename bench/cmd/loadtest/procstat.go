package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture the harness runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procSample is the resource use of a process tree at one instant.
type procSample struct {
	cpuTicks  uint64 // utime+stime of every process in the tree, in clockTicks
	voluntary uint64 // voluntary_ctxt_switches summed over every thread
	rssKiB    uint64 // VmRSS summed over the processes
	hwmKiB    uint64 // VmHWM summed over the processes
	pids      []int
}

// cpuSeconds is the sample's CPU time in seconds.
func (s procSample) cpuSeconds() float64 { return float64(s.cpuTicks) / clockTicks }

// procFS reads a /proc tree; root is "/proc" except in tests.
type procFS struct{ root string }

var proc = procFS{root: "/proc"}

// tree returns pid and all its descendants, read from every process's
// parent in /proc/*/stat.
func (p procFS) tree(pid int) []int {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := p.stat(n)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], n)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields are the fields of /proc/PID/stat the harness reads.
type statFields struct {
	ppid         int
	utime, stime uint64
}

// stat parses /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted from its closing parenthesis.
func (p procFS) stat(pid int) (statFields, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return statFields{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (statFields, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return statFields{}, fmt.Errorf("/proc stat: no command name in %q", b)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return statFields{}, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var s statFields
	var err error
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("/proc stat: ppid: %w", err)
	}
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return s, fmt.Errorf("/proc stat: utime: %w", err)
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return s, fmt.Errorf("/proc stat: stime: %w", err)
	}
	return s, nil
}

// parseStatus reads the named "Key: value [kB]" numbers of a status file.
func parseStatus(b []byte, keys ...string) map[string]uint64 {
	out := make(map[string]uint64, len(keys))
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseUint(f[0], 10, 64)
					out[k] = n
				}
			}
		}
	}
	return out
}

// sample reads the resource use of pid's process tree. Processes that end
// while it reads are skipped.
func (p procFS) sample(pid int) (procSample, error) {
	var s procSample
	s.pids = p.tree(pid)
	read := 0
	for _, id := range s.pids {
		st, err := p.stat(id)
		if err != nil {
			continue
		}
		read++
		s.cpuTicks += st.utime + st.stime
		dir := filepath.Join(p.root, strconv.Itoa(id))
		if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
			m := parseStatus(b, "VmRSS", "VmHWM")
			s.rssKiB += m["VmRSS"]
			s.hwmKiB += m["VmHWM"]
		}
		// A process's own status counts only its main thread's switches.
		tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, t := range tasks {
			if b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status")); err == nil {
				s.voluntary += parseStatus(b, "voluntary_ctxt_switches")["voluntary_ctxt_switches"]
			}
		}
	}
	if read == 0 {
		return s, fmt.Errorf("process %d: not running", pid)
	}
	return s, nil
}

// resetPeak sets VmHWM back to the current RSS for every process in pid's
// tree (clear_refs value 5), so that a later VmHWM is the peak of the
// window. It reports whether every reset succeeded.
func (p procFS) resetPeak(pid int) bool {
	ok := true
	for _, id := range p.tree(pid) {
		if err := os.WriteFile(filepath.Join(p.root, strconv.Itoa(id), "clear_refs"), []byte("5"), 0); err != nil {
			ok = false
		}
	}
	return ok
}

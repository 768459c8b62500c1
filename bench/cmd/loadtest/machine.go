package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/gowaypoint/waypoint/bench/internal/hostinfo"
)

// machine describes where and with what a run happened.
type machine struct {
	cores              int
	model              string
	memory             string
	kernel             string
	loadStart, loadEnd string
	versions           []string
}

func readMachine(t *tools) *machine {
	m := &machine{cores: runtime.NumCPU(), model: "unknown CPU", loadStart: hostinfo.LoadAverage(1)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if kib, ok := parseStatus(b, "MemTotal")["MemTotal"]; ok {
			m.memory = fmt.Sprintf("%.0f GiB", float64(kib)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.versions = append(m.versions, t.goVersion, "fortio "+t.fortioVersion)
	for _, v := range []struct{ bin, name string }{{t.nginx, "nginx"}, {t.haproxy, "haproxy"}, {t.caddy, "caddy"}} {
		if v.bin != "" {
			m.versions = append(m.versions, toolVersion(v.bin, v.name))
		}
	}
	return m
}

// toolVersion asks a reference proxy for its version.
func toolVersion(bin, name string) string {
	arg := "-v"
	if name == "caddy" {
		arg = "version"
	}
	out, _ := exec.Command(bin, arg).CombinedOutput()
	line := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	switch name {
	case "nginx":
		line = strings.TrimPrefix(line, "nginx version: ")
	case "haproxy":
		if f := strings.Fields(line); len(f) >= 3 {
			line = "HAProxy " + f[2]
		}
	case "caddy":
		if f := strings.Fields(line); len(f) > 0 {
			line = "Caddy " + f[0]
		}
	}
	return line
}

func (m *machine) describe() string {
	s := fmt.Sprintf("Machine: %d vCPU (%s), %s, Linux %s; load average %s at the start", m.cores, m.model, m.memory, m.kernel, m.loadStart)
	if m.loadEnd != "" {
		s += ", " + m.loadEnd + " at the end"
	}
	return s + ".\nTools: " + strings.Join(m.versions, ", ") + "."
}

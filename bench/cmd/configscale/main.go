// Command configscale measures what the config of a namespace waypoint
// serving N Services costs the waypoint: for each count it serves the
// config of xds/xdstest.Scale (what a live istiod sends, one cluster, one
// endpoint and one filter chain a Service) from an in-process xDS server
// (state of the world), runs the real waypoint binary against it, waits
// for the config applied, lets it be quiet for 8 s (the overload manager
// returns what the build freed) and prints the time to apply, the process's
// CPU, its RSS (and the anonymous part), its heap in use (the admin's
// /memory) and the RSS per Service over a waypoint with no Service.
//
//	go run ./bench/cmd/configscale                         (0, 1,000 and 3,000 Services)
//	go run ./bench/cmd/configscale -services 0,3000 -rounds 3
//
// Run it from the repository root: it builds ./cmd/waypoint unless
// -waypoint names a binary. Addresses: 127.36.200.0/24 only.
//
// Ownership: the tool owns the waypoint process of each run (SIGTERM when
// the run ends, killed by the kernel should the tool die first) and the
// xDS server's goroutine, which ends before the next run.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

const (
	xdsIP      = "127.36.200.1"
	waypointIP = "127.36.200.5"
	quiet      = 8 * time.Second
)

func main() {
	services := flag.String("services", "0,1000,3000", "Service counts, comma-separated")
	rounds := flag.Int("rounds", 1, "runs of each count, interleaved")
	waypoint := flag.String("waypoint", "", "the waypoint binary (default: built from ./cmd/waypoint)")
	flag.Parse()
	if err := run(*services, *rounds, *waypoint, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "configscale:", err)
		os.Exit(1)
	}
}

func run(services string, rounds int, bin string, out io.Writer) error {
	var counts []int
	for _, s := range strings.Split(services, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return fmt.Errorf("-services: %q", s)
		}
		counts = append(counts, n)
	}
	dir, err := os.MkdirTemp("", "configscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "waypoint")
		build := exec.Command("go", "build", "-o", bin, "./cmd/waypoint")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building ./cmd/waypoint (run from the repository root, or give -waypoint): %w", err)
		}
	}
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{id}}); err != nil {
		return err
	}
	for _, n := range counts {
		if err := writeConfig(filepath.Join(dir, fmt.Sprint(n)), n); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "| Services | applied after start | CPU | RSS MB | anonymous MB | heap in use MB | RSS per Service over 0 |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	idle := int64(-1)
	for range rounds {
		for _, n := range counts {
			r, err := measure(bin, dir, certs.IdentityDir(dir, id), n)
			if err != nil {
				return fmt.Errorf("%d Services: %w", n, err)
			}
			per := ""
			switch {
			case n == 0:
				idle = r.rss
			case idle >= 0:
				per = fmt.Sprintf("%.1f kB", float64(r.rss-idle)/float64(n)/1000)
			}
			fmt.Fprintf(out, "| %d | %.2f s | %.2f s | %.1f | %.1f | %.1f | %s |\n", n, r.applied.Seconds(), r.cpu.Seconds(),
				float64(r.rss)/1e6, float64(r.anon)/1e6, float64(r.heap)/1e6, per)
		}
	}
	return nil
}

// writeConfig writes the config of n Services into dir, as xdsserver reads it.
func writeConfig(dir string, n int) error {
	as, err := xdstest.ScaleConfig(n)
	if err != nil {
		return err
	}
	w := &xds.Wire{}
	for _, a := range as {
		if err := w.Add(a); err != nil {
			return err
		}
	}
	r, err := w.Decode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, f := range map[string]func() ([]byte, error){
		xds.ListenersFile: func() ([]byte, error) { return xds.MarshalResourceList(r.Listeners) },
		xds.ClustersFile:  func() ([]byte, error) { return xds.MarshalResourceList(r.Clusters) },
		xds.EndpointsFile: func() ([]byte, error) { return xds.MarshalResourceList(r.Endpoints) },
	} {
		b, err := f()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// result is one run's figures.
type result struct {
	applied         time.Duration
	cpu             time.Duration
	rss, anon, heap int64
}

// measure runs the waypoint against a server of the config of n Services.
func measure(bin, dir, certDir string, n int) (result, error) {
	var r result
	srv, err := xdsserver.New(filepath.Join(dir, fmt.Sprint(n)), slog.New(slog.DiscardHandler))
	if err != nil {
		return r, err
	}
	ln, err := net.Listen("tcp", xdsIP+":0")
	if err != nil {
		return r, err
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	defer func() { srv.Close(); <-served }()

	logPath := filepath.Join(dir, fmt.Sprintf("waypoint-%d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--xds", ln.Addr().String(), "--cert-dir", certDir,
		"--hbone-addr", waypointIP+":15008", "--admin-addr", waypointIP+":15000", "--metrics-addr", "off")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for !logHas(logPath, `msg="config applied"`) {
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("no config applied within 5 minutes (log %s)", logPath)
		case <-exited:
			return r, fmt.Errorf("the waypoint exited (log %s)", logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.applied = time.Since(start)
	time.Sleep(quiet)
	pid := cmd.Process.Pid
	if r.rss, err = statusBytes(pid, "VmRSS:"); err != nil {
		return r, err
	}
	if r.anon, err = statusBytes(pid, "RssAnon:"); err != nil {
		return r, err
	}
	if r.cpu, err = cpuTime(pid); err != nil {
		return r, err
	}
	r.heap, err = heapInUse("http://" + waypointIP + ":15000/memory")
	return r, err
}

func logHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}

// statusBytes reads a kB field of /proc/PID/status, in bytes.
func statusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuTime reads the user and system time of a process (/proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(ut+st) * (time.Second / 100), nil // USER_HZ
}

// heapInUse reads "allocated" of the admin's /memory.
func heapInUse(url string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var m struct {
		Allocated string `json:"allocated"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return 0, err
	}
	return strconv.ParseInt(m.Allocated, 10, 64)
}

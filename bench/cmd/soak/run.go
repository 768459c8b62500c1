package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/bench/internal/hostinfo"
)

// sample is one row: the waypoint at one instant, and the requests that
// finished since the row before.
type sample struct {
	at         time.Duration // since the load started
	rssKiB     int64
	goroutines int
	fds        int
	cpu        float64 // the waypoint's CPU seconds since it started
	iv         interval
}

// pushCounts are the control loop's pushes.
type pushCounts struct {
	eds, config atomic.Int64
}

// soak runs the load, the churn and the config pushes for the duration,
// sampling as it goes, then writes the results.
func (s *soak) soak(ctx context.Context, out io.Writer) error {
	o := s.o
	g := newLoadgen(s.entry, o.rate, o.concurrency)
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	res := &results{o: o, started: time.Now(), loadStart: hostinfo.LoadAverage(1), g: g}
	pid := s.wp.cmd.Process.Pid
	admin := waypointIP + ":15000"

	fmt.Fprintf(out, "soak: %v at %.0f req/s (open loop, %d workers), %d endpoints, %d replaced every %v (grace %v), config flip every %v; samples every %v, warm-up %v\n",
		o.duration, o.rate, o.concurrency, o.endpoints, o.churn, o.churnEvery, o.grace, o.cfgEvery, o.sample, o.warmup)
	fmt.Fprintf(out, "%8s %8s %6s %5s %8s %8s %8s %7s %6s %5s %6s\n", "t", "RSS MiB", "gorout", "fds", "p50 ms", "p99 ms", "max ms", "req/s", "failed", "late", "CPU")
	var start time.Time
	take := func() error {
		rss, err := rssKiB(pid)
		if err != nil {
			return err
		}
		gr, err := goroutines(admin)
		if err != nil {
			return err
		}
		fds, err := openFDs(pid)
		if err != nil {
			return err
		}
		cpu, err := cpuSeconds(pid)
		if err != nil {
			return err
		}
		row := sample{rssKiB: rss, goroutines: gr, fds: fds, cpu: cpu, iv: g.take()}
		if !start.IsZero() {
			row.at = time.Since(start).Round(time.Second)
		}
		rate, core := 0.0, 0.0
		if n := len(res.rows); n > 0 && row.at > res.rows[n-1].at {
			d := (row.at - res.rows[n-1].at).Seconds()
			rate, core = float64(row.iv.requests)/d, (cpu-res.rows[n-1].cpu)/d
		}
		res.rows = append(res.rows, row)
		fmt.Fprintf(out, "%8v %8.1f %6d %5d %8s %8s %8s %7.0f %6d %5d %5.0f%%\n", row.at, float64(rss)/1024, gr, fds,
			ms(row.iv.p50), ms(row.iv.p99), ms(row.iv.max), rate, row.iv.failures, row.iv.late, 100*core)
		return nil
	}
	// The first row is the waypoint ready and idle, before the load.
	if err := take(); err != nil {
		return err
	}
	selfStart, _ := cpuSeconds(os.Getpid())
	start = time.Now()
	res.started = start
	var work sync.WaitGroup
	work.Add(2)
	go func() { defer work.Done(); g.run(ctx) }()
	ctlErr := make(chan error, 1)
	go func() { defer work.Done(); ctlErr <- s.control(ctx, g, &res.pushes) }()

	var failed, ctlResult error
	ctlDone := false
	tick := time.NewTicker(o.sample)
loop:
	for failed == nil {
		select {
		case <-ctx.Done():
			break loop
		case <-s.wp.exited:
			failed = fmt.Errorf("the waypoint exited: %v (its log: %s)", s.wp.err, filepath.Join(s.dir, "waypoint.log"))
		case ctlResult = <-ctlErr:
			ctlDone = true
			if ctlResult == nil {
				break loop // it saw ctx done first
			}
			failed = fmt.Errorf("control plane: %w", ctlResult)
		case <-tick.C:
			if err := take(); err != nil {
				failed = fmt.Errorf("sampling the waypoint: %w", err)
			}
		}
	}
	tick.Stop()
	cancel()
	work.Wait() // the load's last requests have finished
	res.ended = time.Now()
	if !ctlDone {
		if ctlResult = <-ctlErr; ctlResult != nil && failed == nil {
			failed = fmt.Errorf("control plane: %w", ctlResult)
		}
	}
	if failed == nil {
		if err := take(); err != nil {
			failed = err
		}
	}
	res.loadEnd = hostinfo.LoadAverage(1)
	if selfEnd, err := cpuSeconds(os.Getpid()); err == nil {
		res.selfCPU = selfEnd - selfStart
	}
	res.counters = waypointCounters(admin)
	res.pods = s.pods.String()
	res.accessLog = accessLogSummary(s.accessLogPath(), 10)

	res.print(out)
	md, png, werr := res.write(o.out)
	if werr != nil {
		werr = fmt.Errorf("writing the results: %w", werr)
	} else {
		fmt.Fprintf(out, "\nResults: %s, %s\n", md, png)
	}
	return errors.Join(failed, res.verdict(), werr)
}

// control pushes the churn and the config flips until ctx is done. An
// EDS push starts the new pods first, and lets the ones that left serve
// for their grace after it.
func (s *soak) control(ctx context.Context, g *loadgen, n *pushCounts) error {
	var churnC, cfgC <-chan time.Time
	if s.o.churn > 0 {
		t := time.NewTicker(s.o.churnEvery)
		defer t.Stop()
		churnC = t.C
	}
	if s.o.cfgEvery > 0 {
		t := time.NewTicker(s.o.cfgEvery)
		defer t.Stop()
		cfgC = t.C
	}
	version := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-churnC:
			for range s.o.churn {
				if _, err := s.pods.start(); err != nil {
					return err
				}
			}
			gone := s.pods.leave(s.o.churn)
			if err := s.writeEndpoints(); err != nil {
				return err
			}
			err := s.push()
			s.pods.retire(gone, s.o.grace)
			if err != nil {
				return fmt.Errorf("EDS push: %w", err)
			}
			n.eds.Add(1)
		case <-cfgC:
			version = 1 - version
			if err := s.writeConfig(version); err != nil {
				return err
			}
			g.pushed(version, time.Now())
			if err := s.push(); err != nil {
				return fmt.Errorf("config push: %w", err)
			}
			n.config.Add(1)
		}
	}
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTicks = 100

// cpuSeconds reads a process's utime+stime.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseCPU(string(b))
}

// parseCPU reads utime and stime, fields 14 and 15 of /proc/PID/stat,
// counted after the command name's closing parenthesis (the name may hold
// spaces).
func parseCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat without ')'")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat has %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(u+s) / clockTicks, nil
}

// openFDs counts the entries of /proc/PID/fd.
func openFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// goroutines reads the goroutine count from the admin's pprof index:
// its first line is "goroutine profile: total N".
func goroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts with %q", line)
	}
	io.Copy(io.Discard, resp.Body)
	return strconv.Atoi(v)
}

// counterFilter picks the waypoint counters the summary shows: upstream
// tries, retries, timeouts and connection failures of the soak's
// clusters, the connection manager's answers by class, RBAC's decisions.
const counterFilter = `^cluster\.soak(-h2)?\.(upstream_rq_total|upstream_rq_retry.*|upstream_rq_timeout|upstream_cx_connect_fail|upstream_cx_total|upstream_rq_[2345]xx)$|^http\.soak\.(downstream_rq_[2345]xx|downstream_rq_total|rbac\..*)$`

// waypointCounters reads the counters of counterFilter from the admin's
// /stats, as "name: value" lines; nil when the admin cannot be read.
func waypointCounters(admin string) []string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/stats?usedonly&filter=" + url.QueryEscape(counterFilter))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// logSummary is what the access log holds: how many lines, by response
// code and flags, and the first lines.
type logSummary struct {
	lines  int
	byCode map[string]int // "503 UF" -> lines
	first  []string
}

// accessLogSummary reads the waypoint's access log (lines of
// accessLogFormat), keeping the first n lines.
func accessLogSummary(path string, n int) logSummary {
	ls := logSummary{byCode: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return ls
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ls.lines++
		if len(ls.first) < n {
			ls.first = append(ls.first, line)
		}
		// `... %PROTOCOL%" CODE FLAGS ...`
		if _, rest, ok := strings.Cut(line, `" `); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				ls.byCode[f[0]+" "+f[1]]++
			}
		}
	}
	return ls
}

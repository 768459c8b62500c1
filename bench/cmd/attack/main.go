// Command attack runs issue 16's acceptance attacks against the real
// waypoint binary on a loopback mesh, and measures what each costs: the
// waypoint's peak RSS, the lines it logs, the counters that count the
// refusals, a legitimate client's success (one request a second through
// HBONE on its own connection, its own identity) and the RSS after the
// attack. docs/hardening.md ("Attacks and what they cost") has the table
// and how to run it (make attack).
//
// Each attack gets a fresh mesh: the pod (the harness's HTTP backend
// behind `hbone serve`, the pod's ztunnel stand-in) and the waypoint
// (`waypoint run` with the HTTP service's chain and --max-heap-bytes of a
// 1 GiB pod), with certificates from the mesh CA of `waypoint certs`.
// Every process runs in its own process group, dies with the harness
// (parent-death signal) and is stopped when the attack ends.
package main

import (
	"context"
	"debug/buildinfo"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/bench/internal/hostinfo"
)

const gib = 1 << 30

type options struct {
	duration, settle time.Duration
	warmQuiet        time.Duration
	pending          int
	idleStreams      int
	unit             int
	only             map[string]bool
	maxHeap          uint64
	memLimit         int64
	binDir, work     string
	keep             bool

	waypointBin, hbone, certs string
	waypointEnv               []string
	nofile                    uint64
}

func main() {
	o := &options{}
	var only string
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long each attack runs")
	flag.DurationVar(&o.settle, "settle", 60*time.Second, "how long after each attack the RSS is measured again")
	flag.DurationVar(&o.warmQuiet, "warm-up", 10*time.Second, "quiet time after the warm-up (each attack's path run once) before the idle RSS the RSS after is compared with; 0: no warm-up, the idle RSS is the one from the start")
	flag.IntVar(&o.pending, "pending", 50000, "connections that never send a ClientHello (attack pending)")
	flag.IntVar(&o.idleStreams, "idle-streams", 20000, "idle CONNECT streams (attack idlestreams)")
	flag.IntVar(&o.unit, "unit", 10000, "pending handshakes and idle streams at which the cost per unit is measured")
	flag.StringVar(&only, "attacks", "", "comma-separated attacks to run (default all: plaintext,badcert,pending,noroute,rapidreset,idlestreams)")
	flag.Uint64Var(&o.maxHeap, "max-heap-bytes", 966367641, "the waypoint's --max-heap-bytes (default: 90% of a 1 GiB pod, as the waypoint computes from the container's limit)")
	flag.Int64Var(&o.memLimit, "memory-limit", gib, "the pod's memory limit the peak RSS must stay below")
	flag.StringVar(&o.binDir, "bin", "", "directory with prebuilt waypoint and hbone binaries (default: built from the tree)")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new temporary one, removed unless -keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, counters, heap and goroutine profiles at the attack's end, certificates)")
	flag.Parse()
	if only != "" {
		o.only = map[string]bool{}
		for _, a := range strings.Split(only, ",") {
			if !knownAttack(a) {
				fmt.Fprintf(os.Stderr, "attack: -attacks: unknown attack %q\n", a)
				os.Exit(2)
			}
			o.only[a] = true
		}
	}
	if o.duration <= 0 || o.settle < 0 || o.pending <= 0 || o.idleStreams <= 0 || o.unit <= 0 {
		fmt.Fprintln(os.Stderr, "attack: -duration, -pending, -idle-streams and -unit must be positive, -settle not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
}

func knownAttack(name string) bool {
	for _, a := range attacks {
		if a.name == name {
			return true
		}
	}
	return false
}

type result struct {
	a           attack
	counted     bool
	countedText string
	// idleStart is the RSS once the waypoint has served the legitimate
	// client's first requests; idle after the warm-up and its quiet time
	// (idleStart without a warm-up); after, o.settle after the attack.
	idleStart, idle    memSample
	after              memSample
	peak               int64
	warmErr            error
	logLines, logAfter int
	ok, fail           int
	legitErr           error
	t                  *tally
	err                error
}

func run(ctx context.Context, o *options) error {
	var err error
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "attack-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.work)
		}
	}
	o.nofile = hostinfo.RaiseNoFile()
	if err := findBinaries(o); err != nil {
		return err
	}
	o.certs = filepath.Join(o.work, "certs")
	if err := writeCerts(o.waypointBin, o.certs); err != nil {
		return err
	}
	fmt.Printf("work directory %s; RLIMIT_NOFILE %d; --max-heap-bytes %d; load average %s\n", o.work, o.nofile, o.maxHeap, hostinfo.LoadAverage(3))
	// The harness and the waypoint each hold one descriptor per pending
	// connection, with the same limit; keep 500 for everything else.
	if limit := int(o.nofile) - 500; o.pending > limit {
		fmt.Printf("RLIMIT_NOFILE is %d (its hard limit, which this process may not raise): the pending attack holds %d connections, not %d\n", o.nofile, limit, o.pending)
		o.pending = limit
	}
	var results []*result
	for _, a := range attacks {
		if o.only != nil && !o.only[a.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r := runAttack(ctx, o, a)
		results = append(results, r)
		printResult(o, r)
	}
	fmt.Println()
	fmt.Print(table(o, results))
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s: %w", r.a.name, r.err)
		}
	}
	return nil
}

func runAttack(ctx context.Context, o *options, a attack) *result {
	r := &result{a: a, t: newTally()}
	dir := filepath.Join(o.work, a.name)
	if r.err = os.MkdirAll(dir, 0o755); r.err != nil {
		return r
	}
	fmt.Printf("\n== %s: %s (%s, load average %s)\n", a.name, a.title, o.duration, hostinfo.LoadAverage(3))
	m, err := startMesh(ctx, o, dir)
	if err != nil {
		r.err = err
		return r
	}
	defer m.stop()
	legitConf, closeSrc, err := clientTLS(o.certs, saClient)
	if err != nil {
		r.err = err
		return r
	}
	defer closeSrc()
	legitPool := newPool(ipLegit)
	defer legitPool.Close()
	// Warm up: the legitimate client's connection and the pod's.
	for range 3 {
		if err := get(ctx, legitPool, legitConf); err != nil {
			r.err = fmt.Errorf("the legitimate client before the attack: %w", err)
			return r
		}
	}
	time.Sleep(2 * time.Second)
	pid := m.waypoint.pid()
	r.idleStart = settledRSS(pid)
	r.idle = r.idleStart
	if o.keep {
		saveProfile(ctx, "heap?debug=1", filepath.Join(dir, "memstats-idle-start.txt"))
		saveProc(pid, filepath.Join(dir, "smaps-idle-start.txt"))
	}
	if o.warmQuiet > 0 {
		r.warmErr = warmUp(ctx, o)
		for range 3 {
			get(ctx, legitPool, legitConf)
		}
		time.Sleep(o.warmQuiet)
		r.idle = settledRSS(pid)
		if o.keep {
			saveProfile(ctx, "heap?debug=1", filepath.Join(dir, "memstats-idle-warm.txt"))
			saveProc(pid, filepath.Join(dir, "smaps-idle-warm.txt"))
		}
	}
	before, err := scrape(ctx)
	if err != nil {
		r.err = err
		return r
	}
	lines0 := m.waypoint.logLines()
	e := &env{o: o, m: m, idleRSS: r.idle.rss, t: r.t}
	poll := pollRSS(pid)
	l := runLegit(ctx, legitPool, legitConf)
	actx, cancel := context.WithTimeout(ctx, o.duration)
	done := make(chan error, 1)
	go func() { done <- a.run(actx, e) }()
	<-actx.Done()
	if o.keep {
		saveProfile(ctx, "heap?gc=1", filepath.Join(dir, "heap-at-end.pprof"))
		saveProfile(ctx, "goroutine?debug=1", filepath.Join(dir, "goroutines-at-end.txt"))
	}
	r.ok, r.fail, r.legitErr = l.stop()
	r.err = <-done
	cancel()
	time.Sleep(2 * time.Second) // the refusals in flight are counted, the last throttled lines written
	r.peak = poll.stop()
	r.logLines = m.waypoint.logLines() - lines0
	after, err := scrape(ctx)
	if err != nil && r.err == nil {
		r.err = err
	}
	d := deltas{before: before, after: after}
	r.counted, r.countedText = a.check(e, d)
	if m.waypoint.exited() {
		r.err = fmt.Errorf("the waypoint exited during the attack (%s)", m.waypoint.logPath)
		return r
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.settle):
	}
	r.after = settledRSS(pid)
	if o.keep {
		saveProfile(ctx, "heap?debug=1", filepath.Join(dir, "memstats-after.txt"))
		saveProc(pid, filepath.Join(dir, "smaps-after.txt"))
	}
	r.logAfter = m.waypoint.logLines() - lines0
	if err := os.WriteFile(filepath.Join(dir, "counters.txt"), []byte(d.String()), 0o644); err != nil && r.err == nil {
		r.err = err
	}
	return r
}

// deltas are the counters' changes over an attack.
type deltas struct{ before, after map[string]float64 }

// sum adds the changes of the series of metric name whose labels contain
// label.
func (d deltas) sum(name, label string) float64 {
	var s float64
	for k, v := range d.after {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		if label != "" && !strings.Contains(k, label) {
			continue
		}
		s += v - d.before[k]
	}
	return s
}

// String lists every series that changed.
func (d deltas) String() string {
	var lines []string
	for k, v := range d.after {
		if dv := v - d.before[k]; dv != 0 {
			lines = append(lines, fmt.Sprintf("%s %+g", k, dv))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// String is the sample as "VmRSS (anon A, file F)", in MiB to a tenth.
func (m memSample) String() string {
	f := func(b int64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("%.1f MiB (anon %.1f, file %.1f)", f(m.rss), f(m.anon), f(m.file))
}

// growth is how much larger after is than idle, in percent.
func growth(idle, after int64) float64 { return 100 * (float64(after)/float64(max(1, idle)) - 1) }

func printResult(o *options, r *result) {
	if r.err != nil {
		fmt.Printf("error: %v\n", r.err)
	}
	if r.warmErr != nil {
		fmt.Printf("warm-up: %v\n", r.warmErr)
	}
	fmt.Printf("RSS idle from the start %s, idle after the warm-up %s, %s after the attack %s (%+.0f%% of the warm idle, %+.0f%% of the idle from the start)\n",
		r.idleStart, r.idle, o.settle, r.after, growth(r.idle.rss, r.after.rss), growth(r.idleStart.rss, r.after.rss))
	fmt.Printf("peak RSS %s; %d log lines during the attack (+2 s), %d until the RSS after; legitimate %d/%d",
		mib(r.peak), r.logLines, r.logAfter, r.ok, r.ok+r.fail)
	if r.legitErr != nil {
		fmt.Printf(" (last failure: %v)", r.legitErr)
	}
	fmt.Printf("\ncounted: %v: %s\n", r.counted, r.countedText)
	if r.t.units > 0 {
		fmt.Printf("cost per unit at %d: %.0f B of RSS\n", r.t.units, r.t.unit)
	}
	r.t.mu.Lock()
	for k, err := range r.t.firstErrs {
		fmt.Printf("harness %s: %d, first: %v\n", k, r.t.n[k], err)
	}
	r.t.mu.Unlock()
}

// shortMem is m as "VmRSS (anon + file)" in MiB to a tenth.
func shortMem(m memSample) string {
	f := func(b int64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("%.1f (%.1f + %.1f)", f(m.rss), f(m.anon), f(m.file))
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// table is the results as the Markdown table of docs/hardening.md, then
// the targets with PASS or FAIL.
func table(o *options, rs []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| attack | counters (attacker's view; the waypoint's counters' change) | peak RSS | log lines | legitimate success | RSS idle from start / after warm-up → %s after (anon + file) |\n|---|---|---|---|---|---|\n", o.settle)
	for _, r := range rs {
		unit := ""
		if r.t.units > 0 {
			unit = fmt.Sprintf("; %.0f B RSS per unit at %d", r.t.unit, r.t.units)
		}
		fmt.Fprintf(&b, "| %s | %s%s | %s | %d (%d until the RSS after) | %d/%d (%.1f%%) | %s / %s → %s (%+.0f%% / %+.0f%%) |\n",
			r.a.title, r.countedText, unit, mib(r.peak), r.logLines, r.logAfter, r.ok, r.ok+r.fail,
			100*float64(r.ok)/float64(max(1, r.ok+r.fail)), shortMem(r.idleStart), shortMem(r.idle), shortMem(r.after),
			growth(r.idleStart.rss, r.after.rss), growth(r.idle.rss, r.after.rss))
	}
	fmt.Fprintf(&b, "\ntargets:\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "%-12s below %s: %s; ≤ 100 log lines: %s; every refusal counted: %s; legitimate ≥ 99%%: %s; RSS within 20%% of idle after %s: %s",
			r.a.name, mib(o.memLimit), verdict(r.peak < o.memLimit), verdict(r.logAfter <= 100), verdict(r.counted),
			verdict(r.ok+r.fail > 0 && float64(r.ok) >= 0.99*float64(r.ok+r.fail)), o.settle,
			verdict(float64(r.after.rss) <= 1.2*float64(r.idle.rss)))
		if o.warmQuiet > 0 {
			fmt.Fprintf(&b, " (of the idle from the start: %s)", verdict(float64(r.after.rss) <= 1.2*float64(r.idleStart.rss)))
		}
		if r.t.units > 0 {
			fmt.Fprintf(&b, "; ≤ 8 KiB per unit: %s", verdict(r.t.unit <= 8192))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// findBinaries uses -bin or builds waypoint and hbone from the tree.
func findBinaries(o *options) error {
	if o.binDir == "" {
		o.binDir = filepath.Join(o.work, "bin")
		fmt.Println("building waypoint and hbone (CGO_ENABLED=0 -trimpath, as the image) ...")
		cmd := exec.Command("go", "build", "-trimpath", "-o", o.binDir+"/", "github.com/gowaypoint/waypoint/cmd/waypoint", "github.com/gowaypoint/waypoint/cmd/hbone")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build: %v\n%s", err, b)
		}
	}
	o.waypointBin = filepath.Join(o.binDir, "waypoint")
	o.hbone = filepath.Join(o.binDir, "hbone")
	for _, p := range []string{o.waypointBin, o.hbone} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("-bin: %w", err)
		}
	}
	fmt.Printf("waypoint binary: %s\n", buildFlags(o.waypointBin))
	return nil
}

// buildFlags says how the binary at path was built, as far as its RSS
// goes: with cgo (the C library mapped, threads on C stacks) or not, as
// the image's (CGO_ENABLED=0 -trimpath).
func buildFlags(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	cgo, trim := "?", "false"
	for _, s := range bi.Settings {
		switch s.Key {
		case "CGO_ENABLED":
			cgo = s.Value
		case "-trimpath":
			trim = s.Value
		}
	}
	note := ""
	if cgo != "0" {
		note = " (not as the image, which is built with CGO_ENABLED=0)"
	}
	return fmt.Sprintf("%s, CGO_ENABLED=%s, -trimpath=%s%s", bi.GoVersion, cgo, trim, note)
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// report writes the results to bench/results (a Markdown file and a PNG
// chart, named by the run's start time) and the same tables to stdout,
// with the problems, then the ratios and targets last.
func (r *runner) report(root string, m *machine, started time.Time) error {
	rows := aggregate(r.cells)
	dir := r.o.out
	if dir == "" {
		dir = filepath.Join(root, "bench", "results")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := started.UTC().Format("2006-01-02-150405")
	mdPath := filepath.Join(dir, "loadtest-"+stamp+".md")
	pngPath := filepath.Join(dir, "loadtest-"+stamp+".png")

	var tables bytes.Buffer
	writeTables(&tables, rows)
	var goalsText bytes.Buffer
	writeGoals(&goalsText, r.o, rows)

	drew, err := writeChart(pngPath, "waypoint load test "+started.UTC().Format("2006-01-02"), rows)
	if err != nil {
		r.problem("chart: %v", err)
	}

	var md bytes.Buffer
	fmt.Fprintf(&md, "# Load test, %s\n\n", started.UTC().Format("2006-01-02 15:04 UTC"))
	r.writeSetup(&md, m, time.Since(started))
	fmt.Fprint(&md, "## Medians\n\n")
	md.Write(tables.Bytes())
	if drew {
		fmt.Fprintf(&md, "![CPU per request and p99 latency](%s)\n\n", filepath.Base(pngPath))
	}
	writeProblems(&md, r.problems)
	fmt.Fprint(&md, "## Targets and ratios\n\n```\n")
	md.Write(goalsText.Bytes())
	fmt.Fprint(&md, "```\n\n## Every run\n\n")
	writeRuns(&md, r.cells)
	if err := os.WriteFile(mdPath, md.Bytes(), 0o644); err != nil {
		return err
	}

	fmt.Println()
	os.Stdout.Write(tables.Bytes())
	writeProblems(os.Stdout, r.problems)
	fmt.Printf("Results: %s", mdPath)
	if drew {
		fmt.Printf(", %s", pngPath)
	}
	fmt.Print("\n\n")
	os.Stdout.Write(goalsText.Bytes())
	return nil
}

// writeSetup writes how the run was made.
func (r *runner) writeSetup(w io.Writer, m *machine, took time.Duration) {
	o := r.o
	fmt.Fprintf(w, "Command: `%s` (%s).\n\n", strings.Join(os.Args, " "), took.Round(time.Second))
	fmt.Fprintf(w, "%s\n\n", m.describe())
	fmt.Fprintf(w, "Settings: %d rounds, each proxy in turn (order reversed every other round), %s measured per run after a %s warm-up per scenario; "+
		"fortio with %d connections, %d B payload, %.0f rps fixed rate (hbone-*: %.0f rps; requests %s), http1-max closed loop; bulk %v streams; idle %d streams.\n\n",
		o.rounds, o.duration, o.warmup, o.conns, o.size, o.qps, o.hboneQPS, spread(o.uniform), o.bulkStreams, o.idleStreams)
	fmt.Fprintf(w, "Runtime: waypoint %s; nginx 1 worker; HAProxy nbthread 1; Caddy with Go's defaults (GOMAXPROCS = %d cores); RLIMIT_NOFILE %d.\n\n", o.runtimeSettings(), m.cores, r.nofile)
	fmt.Fprintln(w, "Scenarios:")
	fmt.Fprintln(w)
	for _, name := range o.scenarios {
		s := scenarioByName(name)
		fmt.Fprintf(w, "- `%s`: %s\n", s.name, s.what)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU is utime+stime from /proc/PID/stat of the proxy's processes alone (nginx: master and worker; hbone-*: the waypoint, or the nginx chain's middle), over the fortio run; context switches are voluntary ones summed over threads; peak RSS is VmHWM, reset before each run.")
	fmt.Fprintln(w)
}

func writeProblems(w io.Writer, problems []string) {
	if len(problems) == 0 {
		return
	}
	fmt.Fprint(w, "## Problems\n\n")
	for _, p := range problems {
		fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(strings.TrimSpace(p), "\n", "\n  "))
	}
	fmt.Fprintln(w)
}

func spread(uniform bool) string {
	if uniform {
		return "spread evenly, fortio -uniform"
	}
	return "in bursts, all connections together"
}

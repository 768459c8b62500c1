package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// supervisor owns every process the harness starts. Each runs in its own
// process group (so a Ctrl-C in the terminal reaches the harness alone,
// and stopping one kills its workers too) with SIGKILL as its parent-death
// signal, and is stopped by stopAll on every way out of the harness.
// Safe for concurrent use.
type supervisor struct {
	logDir string

	mu    sync.Mutex
	procs map[*process]struct{} // running; guarded by mu
}

func newSupervisor(logDir string) *supervisor {
	return &supervisor{logDir: logDir, procs: map[*process]struct{}{}}
}

// process is one started command. Its wait goroutine, owned by the
// supervisor, ends when the process exits; done is closed then.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // the exit status; read after done is closed
}

// pid is the process's id (the leader of its process group).
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start runs path with args in the harness's environment changed by env
// (mergeEnv). Output goes to name.log in the log directory.
func (s *supervisor) start(name string, env []string, path string, args ...string) (*process, error) {
	logPath := filepath.Join(s.logDir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(f, "### %s %s %s\n", time.Now().Format(time.RFC3339), strings.Join(env, " "), strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		s.mu.Lock()
		delete(s.procs, p)
		s.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// mergeEnv is base with each KEY=VALUE of env set (replacing base's KEY)
// and each bare KEY of env removed.
func mergeEnv(base, env []string) []string {
	drop := map[string]bool{}
	var set []string
	for _, e := range env {
		k, _, ok := strings.Cut(e, "=")
		drop[k] = true
		if ok {
			set = append(set, e)
		}
	}
	var out []string
	for _, e := range base {
		if k, _, _ := strings.Cut(e, "="); !drop[k] {
			out = append(out, e)
		}
	}
	return append(out, set...)
}

// stop sends SIGTERM to the process's group, then SIGKILL to the group
// after grace or at once when grace is 0, and waits for the process.
func (p *process) stop(grace time.Duration) {
	pg := -p.pid()
	if grace > 0 && !p.exited() {
		syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Workers of a group leader that already exited (nginx's) go too.
	syscall.Kill(pg, syscall.SIGKILL)
	<-p.done
}

// stopAll stops every running process, all at once.
func (s *supervisor) stopAll(grace time.Duration) {
	s.mu.Lock()
	procs := make([]*process, 0, len(s.procs))
	for p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
		}()
	}
	wg.Wait()
}

// logTail is the end of a process's output, for error messages.
func (p *process) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// exitError describes how a process that should still run ended.
func (p *process) exitError() error {
	if !p.exited() {
		return nil
	}
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited: %v; its last output (%s):\n%s", p.name, err, p.logPath, p.logTail(15))
}

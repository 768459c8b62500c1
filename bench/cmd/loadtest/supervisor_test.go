package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gone reports whether pid has ended (or is a zombie nobody waits for).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.HasPrefix(string(b[i+1:]), " Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupervisorStopsWholeGroups(t *testing.T) {
	sup := newSupervisor(t.TempDir())
	// A leader that ignores SIGTERM, with a child of its own (as nginx's
	// master and worker): both must go.
	p, err := sup.start("stubborn", []string{"LOADTEST_TEST=1"}, "/bin/sh", "-c", `trap "" TERM; sleep 60 & echo child $!; wait`)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var tree []int
	for len(tree) < 2 && time.Now().Before(deadline) {
		tree = proc.tree(p.pid())
		time.Sleep(10 * time.Millisecond)
	}
	if len(tree) < 2 {
		t.Fatalf("process tree of %d: %v, want the shell and its sleep", p.pid(), tree)
	}
	if p.exited() || p.exitError() != nil {
		t.Fatal("the shell ended early")
	}
	sup.stopAll(200 * time.Millisecond)
	if !p.exited() {
		t.Fatal("stopAll returned before the process ended")
	}
	for _, pid := range tree {
		waitGone(t, pid)
	}
	log, _ := os.ReadFile(p.logPath)
	if !strings.Contains(string(log), "LOADTEST_TEST=1 /bin/sh") || !strings.Contains(string(log), "child ") {
		t.Errorf("log %s lacks the command line and the output:\n%s", p.logPath, log)
	}
	if len(sup.procs) != 0 {
		t.Errorf("%d processes still tracked", len(sup.procs))
	}
}

func TestSupervisorReportsExits(t *testing.T) {
	dir := t.TempDir()
	sup := newSupervisor(dir)
	defer sup.stopAll(0)
	p, err := sup.start("fails/fast", nil, "/bin/sh", "-c", "echo bind: address already in use; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	err = p.exitError()
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("exitError = %v; want the status and the output's tail", err)
	}
	if filepath.Dir(p.logPath) != dir || strings.Contains(filepath.Base(p.logPath), "/") {
		t.Errorf("log path %s: want a flat file in %s", p.logPath, dir)
	}
	if _, err := sup.start("missing", nil, filepath.Join(dir, "no-such-binary")); err == nil {
		t.Error("starting a missing binary: want an error")
	}
	waitErr := waitTCP(t.Context(), "127.0.40.251:1", p)
	if waitErr == nil || !strings.Contains(waitErr.Error(), "exited") {
		t.Errorf("waiting on an exited process: %v, want it named as exited", waitErr)
	}
	p.stop(time.Second) // already ended: returns at once
}

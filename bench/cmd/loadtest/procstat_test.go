package main

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    statFields
		wantErr bool
	}{
		{name: "plain", in: "42 (nginx) S 1 42 42 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 100 1000 200",
			want: statFields{ppid: 1, utime: 250, stime: 130}},
		{name: "name with spaces and parentheses", in: "7 (a (b) c) R 3 7 7 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 1 1 1",
			want: statFields{ppid: 3, utime: 11, stime: 22}},
		{name: "no name", in: "7 R 3 7", wantErr: true},
		{name: "too short", in: "7 (x) R 3 7 7", wantErr: true},
		{name: "bad utime", in: "7 (x) R 3 7 7 0 -1 0 0 0 0 0 xx 22 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tnginx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n"
	got := parseStatus([]byte(in), "VmRSS", "VmHWM", "voluntary_ctxt_switches", "Missing")
	want := map[string]uint64{"VmRSS": 10240, "VmHWM": 20480, "voluntary_ctxt_switches": 17}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

// fakeProc writes a /proc tree: each process with a stat, a status and
// one status per thread.
type fakeProcess struct {
	pid, ppid    int
	utime, stime uint64
	rss, hwm     uint64
	threadSwitch []uint64 // voluntary switches per thread
}

func writeFakeProc(t *testing.T, procs []fakeProcess) procFS {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		write := func(name, content string) {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("stat", strconv.Itoa(p.pid)+" (proc x) S "+strconv.Itoa(p.ppid)+" 1 1 0 -1 0 0 0 0 0 "+
			strconv.FormatUint(p.utime, 10)+" "+strconv.FormatUint(p.stime, 10)+" 0 0 20 0 1 0 1 1 1")
		write("status", "VmHWM:\t"+strconv.FormatUint(p.hwm, 10)+" kB\nVmRSS:\t"+strconv.FormatUint(p.rss, 10)+" kB\nvoluntary_ctxt_switches:\t999\n")
		for i, sw := range p.threadSwitch {
			write(filepath.Join("task", strconv.Itoa(p.pid+i), "status"), "voluntary_ctxt_switches:\t"+strconv.FormatUint(sw, 10)+"\n")
		}
	}
	os.Mkdir(filepath.Join(root, "self"), 0o755) // not a pid: skipped
	return procFS{root: root}
}

func TestSampleSumsTheProcessTree(t *testing.T) {
	fs := writeFakeProc(t, []fakeProcess{
		{pid: 100, ppid: 1, utime: 10, stime: 5, rss: 2000, hwm: 3000, threadSwitch: []uint64{4}},
		{pid: 101, ppid: 100, utime: 300, stime: 200, rss: 8000, hwm: 9000, threadSwitch: []uint64{50, 25}},
		{pid: 102, ppid: 101, utime: 1, stime: 1, rss: 10, hwm: 10, threadSwitch: []uint64{1}},
		{pid: 200, ppid: 1, utime: 7777, stime: 7777, rss: 1, hwm: 1, threadSwitch: []uint64{1000}},
	})
	for _, tc := range []struct {
		name                      string
		pid                       int
		ticks, switches, rss, hwm uint64
		pids                      int
	}{
		{name: "master, worker and its child", pid: 100, ticks: 517, switches: 80, rss: 10010, hwm: 12010, pids: 3},
		{name: "a leaf", pid: 102, ticks: 2, switches: 1, rss: 10, hwm: 10, pids: 1},
		{name: "an unrelated process", pid: 200, ticks: 15554, switches: 1000, rss: 1, hwm: 1, pids: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := fs.sample(tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			if s.cpuTicks != tc.ticks || s.voluntary != tc.switches || s.rssKiB != tc.rss || s.hwmKiB != tc.hwm || len(s.pids) != tc.pids {
				t.Errorf("got ticks %d, switches %d, rss %d, hwm %d, pids %v; want %d, %d, %d, %d, %d pids",
					s.cpuTicks, s.voluntary, s.rssKiB, s.hwmKiB, s.pids, tc.ticks, tc.switches, tc.rss, tc.hwm, tc.pids)
			}
		})
	}
	if _, err := fs.sample(999); err == nil {
		t.Error("sample of a missing process: want an error")
	}
}

func TestSampleAndResetPeakOfThisProcess(t *testing.T) {
	// Touch 64 MiB outside Go's heap and give it back: RSS falls, the peak
	// stays until reset.
	const size = 64 << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		mem[i] = 1
	}
	if err := syscall.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	before, err := proc.sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.rssKiB == 0 || before.hwmKiB < before.rssKiB+60<<10 {
		t.Fatalf("RSS %d KiB, peak %d KiB: want the peak 64 MiB above RSS", before.rssKiB, before.hwmKiB)
	}
	if !proc.resetPeak(os.Getpid()) {
		t.Skip("clear_refs not writable here")
	}
	after, err := proc.sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.hwmKiB > before.hwmKiB-32<<10 {
		t.Errorf("peak after reset %d KiB, before %d KiB: want it back near RSS (%d KiB)", after.hwmKiB, before.hwmKiB, after.rssKiB)
	}
	if after.cpuTicks < before.cpuTicks {
		t.Errorf("CPU ticks went back: %d then %d", before.cpuTicks, after.cpuTicks)
	}
}

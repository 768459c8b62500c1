package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A trimmed `fortio load -json` result of a gRPC ping run.
const fortioGRPCJSON = `{
  "RunType": "GRPC Ping PayloadLength=1024",
  "ActualQPS": 2990.5,
  "ActualDuration": 5000000000,
  "NumThreads": 16,
  "RetCodes": {"SERVING": 14900, "ERROR": 50},
  "DurationHistogram": {"Count": 14950, "Percentiles": [
    {"Percentile": 50, "Value": 0.0005}, {"Percentile": 90, "Value": 0.0009},
    {"Percentile": 99, "Value": 0.002}, {"Percentile": 99.9, "Value": 0.004}]},
  "Sizes": {"Avg": 0}
}`

func TestReadFortioJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r, err := readFortioJSON(write("grpc.json", fortioGRPCJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.failures(true); got != 50 {
		t.Errorf("gRPC failures = %d, want 50", got)
	}
	if got := r.failures(false); got != 14950 {
		t.Errorf("read as HTTP, failures = %d, want every call (no 200s)", got)
	}
	if got := r.requests(); got != 14966 {
		t.Errorf("requests = %d, want 14950 calls + 16 warm-up calls", got)
	}
	if got := r.percentile(99); got != 0.002 {
		t.Errorf("p99 = %v, want 0.002", got)
	}
	if got := r.percentile(75); got != -1 {
		t.Errorf("p75 (not asked for) = %v, want -1", got)
	}
	for _, tc := range []struct{ name, content, wantErr string }{
		{"none completed", `{"RetCodes": {"-1": 16}, "DurationHistogram": {"Count": 0}}`, "no calls completed"},
		{"not JSON", `Aborting because`, "fortio result"},
	} {
		if _, err := readFortioJSON(write(tc.name+".json", tc.content)); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := readFortioJSON(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: want an error")
	}
}

func TestFortioArgs(t *testing.T) {
	o, err := parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario   string
		rate       float64
		want, not  []string
		wantTarget string
	}{
		{"http1", 3000, []string{"-qps 3000", "-uniform", "-c 16", "-t 5s", "-allow-initial-errors"}, []string{"-h2", "-grpc"}, "http://x"},
		{"http1-max", 0, []string{"-qps 0"}, []string{"-uniform"}, "http://x"},
		{"hbone-http1", 1000, []string{"-qps 1000", "-uniform"}, []string{"-h2", "-grpc"}, "http://x"},
		{"h2c", 3000, []string{"-h2"}, []string{"-grpc"}, "http://x"},
		{"grpc", 3000, []string{"-grpc", "-ping", "-payload-size 1024"}, []string{"-h2"}, "http://x"},
	} {
		args := fortioArgs(o, scenarioByName(tc.scenario), "http://x", tc.rate, 5*time.Second, "/r.json")
		line := " " + strings.Join(args, " ") + " "
		for _, w := range tc.want {
			if !strings.Contains(line, " "+w+" ") {
				t.Errorf("%s: %q lacks %q", tc.scenario, line, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(line, " "+n+" ") {
				t.Errorf("%s: %q has %q", tc.scenario, line, n)
			}
		}
		if args[0] != "load" || args[len(args)-1] != tc.wantTarget || !slices.Contains(args, "50,90,99,99.9") {
			t.Errorf("%s: %q: want load ... -p 50,90,99,99.9 ... target", tc.scenario, line)
		}
	}
	o.uniform = false
	if args := fortioArgs(o, scenarioByName("http1"), "http://x", 3000, time.Second, "/r.json"); slices.Contains(args, "-uniform") {
		t.Errorf("-uniform=false: %q still spreads requests", args)
	}
}

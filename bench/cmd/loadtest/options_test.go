package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(*options) string // what is wrong, or ""
		wantErr string
	}{
		{name: "defaults: everything", args: nil, check: func(o *options) string {
			if !slices.Equal(o.scenarios, allScenarios) || !slices.Equal(o.proxies, allProxies) || o.rounds != 3 ||
				o.duration != 5*time.Second || o.qps != 3000 || o.hboneQPS != 1000 || o.conns != 16 || o.size != 1024 ||
				o.gomaxprocs != 1 || o.gogc != "" || !slices.Equal(o.bulkStreams, []int{1, 16}) || o.idleStreams != 10000 {
				return "not the documented defaults"
			}
			return ""
		}},
		{name: "selection kept in canonical order", args: []string{"-scenarios", "grpc, http1", "-proxies", "nginx,waypoint"}, check: func(o *options) string {
			if !slices.Equal(o.scenarios, []string{"http1", "grpc"}) || !slices.Equal(o.proxies, []string{"waypoint", "nginx"}) {
				return "order not canonical"
			}
			return ""
		}},
		{name: "quick", args: []string{"-quick"}, check: func(o *options) string {
			if o.rounds != quickRounds || o.duration != quickDuration || o.warmup != quickWarmup || o.idleStreams != quickIdleStreams {
				return "quick settings not applied"
			}
			return ""
		}},
		{name: "quick keeps explicit flags", args: []string{"-quick", "-rounds", "5", "-duration", "7s"}, check: func(o *options) string {
			if o.rounds != 5 || o.duration != 7*time.Second || o.warmup != quickWarmup {
				return "explicit flags overridden"
			}
			return ""
		}},
		{name: "runtime settings", args: []string{"-gomaxprocs", "2", "-gogc", "400", "-gomemlimit", "64MiB"}, check: func(o *options) string {
			if !slices.Equal(o.waypointEnv(), []string{"GOMAXPROCS=2", "GOGC=400", "GOMEMLIMIT=64MiB"}) {
				return "waypointEnv " + strings.Join(o.waypointEnv(), " ")
			}
			if o.runtimeSettings() != "GOMAXPROCS=2, GOGC=400, GOMEMLIMIT=64MiB" {
				return "runtimeSettings " + o.runtimeSettings()
			}
			return ""
		}},
		{name: "unknown scenario", args: []string{"-scenarios", "http3"}, wantErr: `unknown "http3"`},
		{name: "unknown proxy", args: []string{"-proxies", "envoy"}, wantErr: `unknown "envoy"`},
		{name: "empty selection", args: []string{"-proxies", ","}, wantErr: "empty"},
		{name: "bulk without the waypoint", args: []string{"-scenarios", "bulk", "-proxies", "nginx"}, wantErr: "measure the waypoint"},
		{name: "zero rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
		{name: "short window", args: []string{"-duration", "100ms"}, wantErr: "-duration"},
		{name: "bad bulk streams", args: []string{"-bulk-streams", "1,x"}, wantErr: "-bulk-streams"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(o); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestScenarioPlan(t *testing.T) {
	o, err := parseOptions([]string{"-size", "512"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario, proxy string
		proxies         []string
		rate            float64
		target          string
	}{
		{"http1", "caddy", allProxies, 3000, "http://127.0.40.23:8080/echo?size=512"},
		{"http1-max", "waypoint", allProxies, 0, "http://127.0.40.20:8080/echo?size=512"},
		{"h2c", "haproxy", allProxies, 3000, "http://127.0.40.22:8081/echo?size=512"},
		{"grpc", "nginx", allProxies, 3000, "127.0.40.21:8082"},
		{"hbone-http1", "waypoint", []string{"waypoint", "nginx"}, 1000, "http://127.0.40.30:18001/echo?size=512"},
		{"hbone-http1", "nginx", []string{"waypoint", "nginx"}, 1000, "http://127.0.40.31:18001/echo?size=512"},
		{"hbone-grpc", "waypoint", []string{"waypoint", "nginx"}, 1000, "127.0.40.30:18002"},
		{"bulk", "waypoint", []string{"waypoint"}, 1000, ""},
		{"idle", "waypoint", []string{"waypoint"}, 1000, ""},
	} {
		s := scenarioByName(tc.scenario)
		if got := o.proxiesFor(s); !slices.Equal(got, tc.proxies) {
			t.Errorf("%s: proxies %v, want %v", tc.scenario, got, tc.proxies)
		}
		if s.kind != kindRequests {
			continue
		}
		if got := o.rate(s); got != tc.rate {
			t.Errorf("%s: rate %v, want %v", tc.scenario, got, tc.rate)
		}
		if got := o.loadTarget(s, tc.proxy); got != tc.target {
			t.Errorf("%s/%s: target %q, want %q", tc.scenario, tc.proxy, got, tc.target)
		}
	}
}

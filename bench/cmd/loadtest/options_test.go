package main

import (
	"fmt"
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
				len(o.variants) != 3 || o.gogc != "" || !slices.Equal(o.bulkStreams, []int{1, 16}) || o.idleStreams != 10000 {
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
		{name: "default variants", args: nil, check: func(o *options) string {
			want := []variant{{id: "waypoint-1", gomaxprocs: 1, index: 0}, {id: "waypoint-2", gomaxprocs: 2, index: 1}, {id: "waypoint-unset", gomaxprocs: 0, index: 2}}
			if !slices.Equal(o.variants, want) {
				return fmt.Sprintf("variants %+v, want %+v", o.variants, want)
			}
			if o.variantWith(2) != "waypoint-2" || o.variantWith(0) != "waypoint-unset" || o.variantWith(4) != "" {
				return "variantWith"
			}
			for _, tc := range []struct {
				v     variant
				procs int
				want  string
			}{
				{o.variants[0], 2, "waypoint (GOMAXPROCS=1)"},
				{o.variants[1], 0, "waypoint (GOMAXPROCS=2)"},
				{o.variants[2], 2, "waypoint (GOMAXPROCS unset = 2)"},
				{o.variants[2], 0, "waypoint (GOMAXPROCS unset)"},
			} {
				if got := tc.v.name(tc.procs); got != tc.want {
					return fmt.Sprintf("name %q, want %q", got, tc.want)
				}
			}
			return ""
		}},
		{name: "runtime settings", args: []string{"-gomaxprocs", "2, unset", "-gogc", "400", "-gomemlimit", "64MiB"}, check: func(o *options) string {
			if !slices.Equal(o.waypointEnv(o.variants[0]), []string{"GOMAXPROCS=2", "GOGC=400", "GOMEMLIMIT=64MiB"}) {
				return "waypointEnv " + strings.Join(o.waypointEnv(o.variants[0]), " ")
			}
			// unset removes GOMAXPROCS from the harness's environment.
			if !slices.Equal(o.waypointEnv(o.variants[1]), []string{"GOMAXPROCS", "GOGC=400", "GOMEMLIMIT=64MiB"}) {
				return "waypointEnv " + strings.Join(o.waypointEnv(o.variants[1]), " ")
			}
			if want := "GOMAXPROCS=2, unset (one waypoint each, measured side by side), GOGC=400, GOMEMLIMIT=64MiB"; o.runtimeSettings() != want {
				return "runtimeSettings " + o.runtimeSettings()
			}
			return ""
		}},
		{name: "fixed variants", args: []string{"-gomaxprocs", "1,2,2-fixed,unset-fixed"}, check: func(o *options) string {
			want := []variant{{id: "waypoint-1", gomaxprocs: 1}, {id: "waypoint-2", gomaxprocs: 2, index: 1},
				{id: "waypoint-2-fixed", gomaxprocs: 2, fixed: true, index: 2}, {id: "waypoint-unset-fixed", fixed: true, index: 3}}
			if !slices.Equal(o.variants, want) {
				return fmt.Sprintf("variants %+v, want %+v", o.variants, want)
			}
			if o.variantWith(2) != "waypoint-2" || o.variantWith(0) != "" {
				return "variantWith picked a -fixed variant"
			}
			if got := o.variants[2].name(0); got != "waypoint (GOMAXPROCS=2, --scale-procs=false)" {
				return "name " + got
			}
			if !slices.Equal(o.variants[2].flags(), []string{"--scale-procs=false"}) || o.variants[1].flags() != nil {
				return "flags"
			}
			for _, g := range goals(o, func(p string) string { return p }) {
				if strings.Contains(g.what, "waypoint-2-fixed") || strings.Contains(g.what, "--scale-procs=false") {
					return "a -fixed variant is held to a target: " + g.what
				}
			}
			return ""
		}},
		{name: "fixed twice", args: []string{"-gomaxprocs", "2-fixed,2,2-fixed"}, wantErr: `"2-fixed" given twice`},
		{name: "bad GOMAXPROCS", args: []string{"-gomaxprocs", "1,0"}, wantErr: `"0" is neither`},
		{name: "GOMAXPROCS twice", args: []string{"-gomaxprocs", "unset,2,unset"}, wantErr: `"unset" given twice`},
		{name: "no GOMAXPROCS", args: []string{"-gomaxprocs", ","}, wantErr: "-gomaxprocs: empty"},
		{name: "too many GOMAXPROCS", args: []string{"-gomaxprocs", "1,2,3,4,5,6,7,8,9"}, wantErr: "at most 8"},
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
	// The waypoint as its three variants, each with its own addresses.
	wps := []string{"waypoint-1", "waypoint-2", "waypoint-unset"}
	all := append(slices.Clone(wps), "nginx", "haproxy", "caddy")
	hbone := append(slices.Clone(wps), "nginx")
	for _, tc := range []struct {
		scenario, proxy string
		proxies         []string
		rate            float64
		target          string
	}{
		{"http1", "caddy", all, 3000, "http://127.0.40.23:8080/echo?size=512"},
		{"http1-max", "waypoint-1", all, 0, "http://127.0.40.20:8080/echo?size=512"},
		{"http1-max", "waypoint-2", all, 0, "http://127.0.40.51:8080/echo?size=512"},
		{"h2c", "haproxy", all, 3000, "http://127.0.40.22:8081/echo?size=512"},
		{"grpc", "nginx", all, 3000, "127.0.40.21:8082"},
		{"grpc", "waypoint-unset", all, 3000, "127.0.40.52:8082"},
		{"hbone-http1", "waypoint-1", hbone, 1000, "http://127.0.40.30:18001/echo?size=512"},
		{"hbone-http1", "waypoint-unset", hbone, 1000, "http://127.0.40.62:18001/echo?size=512"},
		{"hbone-http1", "nginx", hbone, 1000, "http://127.0.40.31:18001/echo?size=512"},
		{"hbone-grpc", "waypoint-2", hbone, 1000, "127.0.40.61:18002"},
		{"bulk", "waypoint-1", wps, 1000, ""},
		{"idle", "waypoint-1", []string{"waypoint-1"}, 1000, ""},
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

func TestUseNetMovesVariants(t *testing.T) {
	defer useNet("127.0.40")
	useNet("127.0.42")
	for _, tc := range []struct{ got, want string }{
		{waypointIP(0), "127.0.42.20"}, {waypointIP(1), "127.0.42.51"}, {waypointIP(7), "127.0.42.57"},
		{sourceIP(0), "127.0.42.30"}, {sourceIP(2), "127.0.42.62"},
	} {
		if tc.got != tc.want {
			t.Errorf("address %s, want %s", tc.got, tc.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/bin", "GOMAXPROCS=4", "GOGC=50", "HOME=/root"}
	for _, tc := range []struct {
		env, want []string
	}{
		{nil, base},
		{[]string{"GOMAXPROCS=1"}, []string{"PATH=/bin", "GOGC=50", "HOME=/root", "GOMAXPROCS=1"}},
		{[]string{"GOMAXPROCS", "GOGC=400"}, []string{"PATH=/bin", "HOME=/root", "GOGC=400"}},
		{[]string{"XDG_DATA_HOME=/tmp"}, append(slices.Clone(base), "XDG_DATA_HOME=/tmp")},
	} {
		if got := mergeEnv(base, tc.env); !slices.Equal(got, tc.want) {
			t.Errorf("mergeEnv(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

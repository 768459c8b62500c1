package dubboconn

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Addresses of this file's tests (127.0.95.0/24).
const (
	telWaypointIP = "127.0.95.5"
	telPodA       = "127.0.95.11:20880"
	telPodB       = "127.0.95.12:20880"
)

// telemetryConfig: a Dubbo chain with two RBAC filters as istiod orders
// them (DENY, then ALLOW), the listener's access logs (Istio's text format
// and a JSON one), and clusters with Istio's metadata.
//
//	deny-admin            DENY anyone calling /com.example.Admin/*
//	greeter-consumer      ALLOW default/consumer calling /com.example.Greeter/*
//	v2-with-role          ALLOW anyone calling version 2.0.0 with the attachment x-role: admin
const telemetryConfig = `
static_resources:
  listeners:
  - name: dubbo
    address: {socket_address: {address: 127.0.95.5, port_value: 1}}
    access_log:
    - name: envoy.access_loggers.file
      typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.Dir}}/access.log", log_format: {text_format_source: {inline_string: "{{.IstioFormat}}"}}}
    - name: envoy.access_loggers.file
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
        path: "{{.Dir}}/access.json"
        log_format:
          json_format:
            code: "%RESPONSE_CODE%"
            dubbo_status: "%RESP(:DUBBO-STATUS)%"
            flags: "%RESPONSE_FLAGS%"
            details: "%RESPONSE_CODE_DETAILS%"
            method: "%REQ(:METHOD)%"
            path: "%REQ(:PATH)%"
            trace: "%REQ(TRACE-ID)%"
            protocol: "%PROTOCOL%"
            route: "%ROUTE_NAME%"
            cluster: "%UPSTREAM_CLUSTER%"
            upstream: "%UPSTREAM_HOST%"
            attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
            peer: "%DOWNSTREAM_PEER_URI_SAN%"
            received: "%BYTES_RECEIVED%"
            sent: "%BYTES_SENT%"
            source_app: "%FILTER_STATE(downstream_peer_obj:FIELD:app)%"
            destination_app: "%FILTER_STATE(upstream_peer_obj:FIELD:app)%"
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: tel
          multiple_route_config:
            route_config:
            - name: greeter-routes
              interface: "*"
              routes:
              - match: {method: {name: {exact: busy}}}
                route: {cluster: tel-busy}
              - match: {method: {name: {exact: toEmpty}}}
                route: {cluster: tel-empty}
              - match: {method: {name: {safe_regex: {regex: ".*"}}}}
                route: {cluster: tel-greeter}
          dubbo_filters:
          - name: envoy.filters.http.rbac
            config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules_stat_prefix: "tel."
              rules:
                action: DENY
                policies:
                  deny-admin:
                    permissions: [{url_path: {path: {prefix: /com.example.Admin/}}}]
                    principals: [{any: true}]
          - name: envoy.filters.http.rbac
            config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules_stat_prefix: "tel."
              rules:
                policies:
                  greeter-consumer:
                    permissions: [{and_rules: {rules: [{url_path: {path: {prefix: /com.example.Greeter/}}}]}}]
                    principals: [{filter_state: {key: io.istio.peer_principal, string_match: {exact: "spiffe://cluster.local/ns/default/sa/consumer"}}}]
                  v2-with-role:
                    permissions: [{and_rules: {rules: [{header: {name: ":dubbo-service-version", string_match: {exact: "2.0.0"}}}, {header: {name: x-role, string_match: {exact: admin}}}]}}]
                    principals: [{any: true}]
          - name: envoy.filters.dubbo.router
  clusters:
  - name: tel-greeter
    connect_timeout: 1s
    metadata: {filter_metadata: {istio: {services: [{host: greeter.mesh.local, name: greeter, namespace: default}]}}}
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment:
      cluster_name: tel-greeter
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.95.11, port_value: 20880}}}
          metadata: {filter_metadata: {istio: {workload: "greeter-v1;default;greeter;v1;Kubernetes"}}}
  - name: tel-busy
    connect_timeout: 1s
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment:
      cluster_name: tel-busy
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.95.11, port_value: 20880}}}
        - endpoint: {address: {socket_address: {address: 127.0.95.12, port_value: 20880}}}
  - name: tel-empty
    load_assignment: {cluster_name: tel-empty, endpoints: []}
`

var telConsumer = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "consumer"}

const telBaggage = "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=consumer-v1,service.name=consumer,service.version=v1"

func telemetryEnv(t *testing.T, peer spiffe.ID, reg *prometheus.Registry) *env {
	t.Helper()
	cfg := strings.ReplaceAll(telemetryConfig, "{{.IstioFormat}}", strings.ReplaceAll(strings.TrimSuffix(accesslog.IstioFormat, "\n"), `"`, `\"`)+`\n`)
	logs := &accesslog.Sinks{}
	e := newEnv(t, envOptions{config: cfg, listenIP: telWaypointIP, peer: peer, baggage: telBaggage,
		env: &Env{Metrics: metrics.New(reg, 100), Logs: logs}})
	t.Cleanup(logs.Close)
	return e
}

func service(iface, method, version string) hessian.Service {
	return hessian.Service{Path: iface, Interface: iface, Method: method, Version: version}
}

// TestRBAC runs Envoy's HTTP RBAC filter on Dubbo calls: the path, the
// attachments and the views of the request model, the principal of the
// peer; a denial is status 40 "RBAC: access denied" and the connection
// goes on; decisions are counted per policy.
func TestRBAC(t *testing.T) {
	provider(t, telPodA, "pod-a", nil)
	consumerEnv := telemetryEnv(t, telConsumer, prometheus.NewRegistry())
	intruderEnv := telemetryEnv(t, spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "intruder"}, prometheus.NewRegistry())
	consumer, intruder := consumerEnv.consumer(), intruderEnv.consumer()
	ctx := ctxTimeout(t, 20*time.Second)
	counter := func(name, policy string) float64 {
		return statsCounter(t, name, map[string]string{"prefix": "tel.", "policy": policy})
	}
	deniedAdmin, allowedGreeter, allowedRole, deniedNone := counter("envoy_http_rbac_denied", "deny-admin"),
		counter("envoy_http_rbac_allowed", "greeter-consumer"), counter("envoy_http_rbac_allowed", "v2-with-role"),
		counter("envoy_http_rbac_denied", "none")
	cases := []struct {
		name    string
		c       *dubbotest.Consumer
		service hessian.Service
		atts    map[string]string
		allowed bool
	}{
		{"the consumer calls the greeter", consumer, service("com.example.Greeter", "hello", "1.0.0"), nil, true},
		{"the consumer calls the admin", consumer, service("com.example.Admin", "reset", "1.0.0"), nil, false},
		{"the consumer calls another service", consumer, service("org.other.Svc", "m", "1.0.0"), nil, false},
		{"and the greeter again on the same connection", consumer, service("com.example.Greeter", "bye", "1.0.0"), nil, true},
		{"the intruder calls the greeter", intruder, service("com.example.Greeter", "hello", "1.0.0"), nil, false},
		{"the intruder with the role, version 2.0.0", intruder, service("org.other.Svc", "m", "2.0.0"), map[string]string{"x-role": "admin"}, true},
		{"the intruder with the role, version 1.0.0", intruder, service("org.other.Svc", "m", "1.0.0"), map[string]string{"x-role": "admin"}, false},
		{"the role does not open the admin", intruder, service("com.example.Admin", "reset", "2.0.0"), map[string]string{"x-role": "admin"}, false},
	}
	for _, tc := range cases {
		r, err := tc.c.Call(ctx, tc.service, []any{"x"}, tc.atts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		switch {
		case tc.allowed && (r.Status != 20 || r.Value != "pod-a: "+tc.service.Method+"(x)"):
			t.Errorf("%s: status %d %v %q, want the provider's answer", tc.name, r.Status, r.Value, r.ErrorMessage)
		case !tc.allowed && (r.Status != 40 || r.ErrorMessage != "RBAC: access denied"):
			t.Errorf("%s: status %d %v %q, want 40 \"RBAC: access denied\"", tc.name, r.Status, r.Value, r.ErrorMessage)
		}
	}
	for _, c := range []struct {
		name, policy string
		before, want float64
	}{
		{"envoy_http_rbac_denied", "deny-admin", deniedAdmin, 2},
		{"envoy_http_rbac_allowed", "greeter-consumer", allowedGreeter, 2},
		{"envoy_http_rbac_allowed", "v2-with-role", allowedRole, 1},
		{"envoy_http_rbac_denied", "none", deniedNone, 3},
	} {
		if got := counter(c.name, c.policy) - c.before; got != c.want {
			t.Errorf("%s{policy=%q} rose by %v, want %v", c.name, c.policy, got, c.want)
		}
	}
}

// TestMetricsAndAccessLog checks what a Dubbo call reports: Istio's
// standard metrics (labels, codes, sizes), the Envoy-style cluster
// counters, and the access log lines of the listener.
func TestMetricsAndAccessLog(t *testing.T) {
	a := provider(t, telPodA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		switch c.Method {
		case "fail":
			return dubbotest.Reply{Status: 70, ErrorMessage: "it broke"}
		case "slow":
			time.Sleep(300 * time.Millisecond)
		}
		return dubbotest.Reply{Value: "ok"}
	})
	b := provider(t, telPodB, "pod-b", func(*dubbotest.Call) dubbotest.Reply {
		return dubbotest.Reply{Status: 100, ErrorMessage: "busy"}
	})
	reg := prometheus.NewRegistry()
	e := telemetryEnv(t, telConsumer, reg)
	c := e.consumer()
	ctx := ctxTimeout(t, 20*time.Second)
	clusterBefore := map[string]float64{}
	for _, name := range []string{"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_retry", "envoy_cluster_upstream_rq_timeout"} {
		for _, cl := range []string{"tel-greeter", "tel-busy"} {
			clusterBefore[name+cl] = statsCounter(t, name, map[string]string{"cluster_name": cl})
		}
	}
	greeter := func(m string) hessian.Service { return service("com.example.Greeter", m, "1.0.0") }
	calls := []struct {
		service hessian.Service
		atts    map[string]string
		status  byte
	}{
		{greeter("hello"), nil, 20},
		{greeter("hello"), nil, 20},
		{service("com.example.Admin", "reset", "1.0.0"), nil, 40},
		{greeter("fail"), nil, 70},
		{greeter("toEmpty"), nil, 80},
		{greeter("slow"), map[string]string{"timeout": "100"}, 31},
		{greeter("busy"), nil, 20},
		{greeter("busy"), nil, 20},
		{greeter("busy"), nil, 20},
		{greeter("busy"), nil, 20},
	}
	var reqBytes int
	for i, call := range calls {
		// trace-id tells the call's access log lines, written as calls end.
		atts := map[string]string{"trace-id": fmt.Sprintf("t-%d", i)}
		for k, v := range call.atts {
			atts[k] = v
		}
		calls[i].atts = atts
		r, err := c.Call(ctx, call.service, []any{"x"}, atts)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != call.status {
			t.Fatalf("call %d (%s): status %d %q, want %d", i, call.service.Method, r.Status, r.ErrorMessage, call.status)
		}
		frame, err := dubbotest.Request(1, true, call.service, []any{"x"}, atts)
		if err != nil {
			t.Fatal(err)
		}
		reqBytes += len(frame)
	}
	// A call is recorded as it ends, which may be just after the consumer
	// has read its reply.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var n float64
		for _, m := range gatherSeries(t, reg, "istio_requests_total") {
			n += m.GetCounter().GetValue()
		}
		if n >= float64(len(calls)) {
			break
		}
	}

	t.Run("istio standard metrics", func(t *testing.T) {
		want := map[string]struct {
			n     float64
			flags string
		}{"200": {6, "-"}, "403": {1, "-"}, "500": {1, "-"}, "503": {1, "UH"}, "504": {1, "UT"}}
		got := map[string]float64{}
		var total float64
		for _, m := range gatherSeries(t, reg, "istio_requests_total") {
			l := labelMap(m)
			code := l["response_code"]
			total += m.GetCounter().GetValue()
			got[code] += m.GetCounter().GetValue()
			if w, ok := want[code]; !ok || l["response_flags"] != w.flags {
				t.Errorf("a series with response_code %s flags %s", code, l["response_flags"])
			}
			for k, v := range map[string]string{
				"reporter": "waypoint", "request_protocol": "dubbo", "grpc_response_status": "", "connection_security_policy": "mutual_tls",
				"source_workload": "consumer-v1", "source_app": "consumer", "source_version": "v1", "source_principal": telConsumer.String(),
				"source_workload_namespace": "default", "source_cluster": "Kubernetes",
			} {
				if l[k] != v {
					t.Errorf("response_code %s: %s=%q, want %q", code, k, l[k], v)
				}
			}
			dest := map[string]string{"destination_workload": "unknown", "destination_service": "unknown"}
			switch l["destination_service"] {
			case "greeter.mesh.local":
				dest = map[string]string{"destination_workload": "greeter-v1", "destination_app": "greeter", "destination_version": "v1",
					"destination_service_name": "greeter", "destination_service_namespace": "default", "destination_cluster": "Kubernetes"}
			case "unknown": // the local replies before a try (403, 503) and tel-busy, which has no istio metadata
			default:
				t.Errorf("destination_service %q", l["destination_service"])
			}
			for k, v := range dest {
				if l[k] != v {
					t.Errorf("response_code %s, %s: %s=%q, want %q", code, l["destination_service"], k, l[k], v)
				}
			}
		}
		for code, w := range want {
			if got[code] != w.n {
				t.Errorf("istio_requests_total{response_code=%s} = %v, want %v", code, got[code], w.n)
			}
		}
		if total != float64(len(calls)) {
			t.Errorf("%v requests counted, want %d", total, len(calls))
		}
		var sum float64
		for _, m := range gatherSeries(t, reg, "istio_request_bytes") {
			sum += m.GetHistogram().GetSampleSum()
		}
		if sum != float64(reqBytes) {
			t.Errorf("istio_request_bytes sum %v, want the %d bytes of the frames sent", sum, reqBytes)
		}
		denial := len(dubbo.AppendErrorResponse(nil, 1, dubbo.StatusBadRequest, "RBAC: access denied"))
		for _, m := range gatherSeries(t, reg, "istio_response_bytes") {
			if labelMap(m)["response_code"] == "403" && m.GetHistogram().GetSampleSum() != float64(denial) {
				t.Errorf("the denial's response bytes: %v, want the %d of its frame", m.GetHistogram().GetSampleSum(), denial)
			}
		}
		for _, m := range gatherSeries(t, reg, "istio_request_duration_milliseconds") {
			if l := labelMap(m); l["response_code"] == "504" && m.GetHistogram().GetSampleSum() < 100 {
				t.Errorf("the timed-out call lasted %v ms, want at least its 100 ms timeout", m.GetHistogram().GetSampleSum())
			}
		}
	})

	t.Run("cluster counters", func(t *testing.T) {
		delta := func(name, cl string) float64 {
			return statsCounter(t, name, map[string]string{"cluster_name": cl}) - clusterBefore[name+cl]
		}
		// pod b answers every busy call 100, so each of its answers is a
		// retry to pod a.
		retries := float64(b.Calls.Load())
		for _, c := range []struct {
			name, cluster string
			want          float64
		}{
			{"envoy_cluster_upstream_rq_total", "tel-greeter", 4},
			{"envoy_cluster_upstream_rq_timeout", "tel-greeter", 1},
			{"envoy_cluster_upstream_rq_retry", "tel-greeter", 0},
			{"envoy_cluster_upstream_rq_total", "tel-busy", 4 + retries},
			{"envoy_cluster_upstream_rq_retry", "tel-busy", retries},
		} {
			if got := delta(c.name, c.cluster); got != c.want {
				t.Errorf("%s{cluster_name=%s} rose by %v, want %v", c.name, c.cluster, got, c.want)
			}
		}
		if retries == 0 || a.Calls.Load() != 4+4 {
			t.Errorf("pod b answered %v busy calls, pod a took %d calls; want some retries", retries, a.Calls.Load())
		}
		if got := statsGauge(t, "envoy_cluster_upstream_cx_active", map[string]string{"cluster_name": "tel-greeter"}); got != 0 {
			t.Errorf("envoy_cluster_upstream_cx_active %v after every call ended", got)
		}
	})

	t.Run("access log", func(t *testing.T) {
		e.denv.Logs.Close() // flushes
		lines := readLines(t, filepath.Join(e.dir, "access.json"))
		if len(lines) != len(calls) {
			t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(calls), strings.Join(lines, "\n"))
		}
		type entry map[string]any
		want := []entry{
			{"code": 200.0, "dubbo_status": "20", "flags": nil, "details": "via_upstream", "method": "hello", "path": "/com.example.Greeter/hello",
				"protocol": "dubbo", "route": "greeter-routes", "cluster": "tel-greeter", "upstream": telPodA, "attempts": 1.0,
				"peer": telConsumer.String(), "source_app": "consumer", "destination_app": "greeter"},
			{"code": 200.0},
			{"code": 403.0, "dubbo_status": "40", "details": "rbac_access_denied_matched_policy[deny-admin]", "path": "/com.example.Admin/reset",
				"cluster": nil, "upstream": nil, "attempts": 0.0, "sent": float64(len(dubbo.AppendErrorResponse(nil, 1, 40, "RBAC: access denied"))), "destination_app": "unknown"},
			{"code": 500.0, "dubbo_status": "70", "details": "via_upstream", "upstream": telPodA},
			{"code": 503.0, "dubbo_status": "80", "flags": "UH", "details": "no_healthy_upstream", "cluster": "tel-empty", "upstream": nil},
			{"code": 504.0, "dubbo_status": "31", "flags": "UT", "details": "upstream_response_timeout", "upstream": telPodA},
			{"code": 200.0, "dubbo_status": "20", "cluster": "tel-busy", "upstream": telPodA},
		}
		byTrace := map[string]entry{}
		for _, line := range lines {
			var got entry
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			tr, _ := got["trace"].(string)
			byTrace[tr] = got
		}
		for i, w := range want {
			got := byTrace[fmt.Sprintf("t-%d", i)]
			if got == nil {
				t.Fatalf("no line for call %d", i)
			}
			for k, v := range w {
				if got[k] != v {
					t.Errorf("call %d: %s = %#v, want %#v\n%v", i, k, got[k], v, got)
				}
			}
			frame, _ := dubbotest.Request(1, true, calls[i].service, []any{"x"}, calls[i].atts)
			if got["received"] != float64(len(frame)) {
				t.Errorf("call %d: %v bytes received, want the %d of its frame", i, got["received"], len(frame))
			}
		}
		text := readLines(t, filepath.Join(e.dir, "access.log"))
		if len(text) != len(calls) {
			t.Fatalf("%d text lines, want %d", len(text), len(calls))
		}
		all := strings.Join(text, "\n")
		for _, sub := range []string{
			`"hello /com.example.Greeter/hello dubbo" 200 - via_upstream - "-" `,
			`"reset /com.example.Admin/reset dubbo" 403 - rbac_access_denied_matched_policy[deny-admin] - "-" `,
			`"fail /com.example.Greeter/fail dubbo" 500 - via_upstream`,
			`"toEmpty /com.example.Greeter/toEmpty dubbo" 503 UH no_healthy_upstream`,
			`"slow /com.example.Greeter/slow dubbo" 504 UT upstream_response_timeout`,
			`"-" "-" "-" "-" "` + telPodA + `" tel-greeter - ` + e.ln.Addr().String() + ` `,
		} {
			if !strings.Contains(all, sub) {
				t.Errorf("no text line contains\n %s\nin\n%s", sub, all)
			}
		}
		for _, l := range text {
			if !strings.HasSuffix(l, " greeter-routes") {
				t.Errorf("a text line does not end with the route name: %s", l)
			}
		}
	})
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func gatherSeries(t *testing.T, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// statsCounter sums the counters of the process's registry named name
// whose labels include want; statsGauge the gauges.
func statsCounter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	return statsSum(t, name, want, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
}

func statsGauge(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	return statsSum(t, name, want, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
}

func statsSum(t *testing.T, name string, want map[string]string, value func(*dto.Metric) float64) float64 {
	t.Helper()
	var sum float64
next:
	for _, m := range gatherSeries(t, stats.Registry, name) {
		l := labelMap(m)
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		sum += value(m)
	}
	return sum
}

package waypoint

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// withIstiodAccessLogs adds the access logs istiod writes for a waypoint when a Telemetry
// turns them on, each to its own file of dir: every listener's filtered to NR
// (listener-NAME.log), connect_terminate's connection manager's to codes of 400 and more
// (entry.log), the tunnelling tcp_proxies' to UF (tunnel.log), main_internal's connection
// managers and tcp_proxies unfiltered (requests.log).
func withIstiodAccessLogs(t *testing.T, r *xds.Resources, dir string) *xds.Resources {
	t.Helper()
	const format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:AUTHORITY)% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS%\n"
	logTo := func(name string, f *accesslogv3.AccessLogFilter) []*accesslogv3.AccessLog {
		a, err := anypb.New(&filev3.FileAccessLog{Path: filepath.Join(dir, name), AccessLogFormat: &filev3.FileAccessLog_LogFormat{
			LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: format}}}})
		if err != nil {
			t.Fatal(err)
		}
		return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", Filter: f, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}}
	}
	flag := func(f string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{f}}}}
	}
	ge400 := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400, RuntimeKey: "istio.io/unset"}}}}}
	for _, l := range r.Listeners {
		l.AccessLog = logTo("listener-"+l.GetName()+".log", flag("NR"))
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var msg proto.Message
				switch f.GetTypedConfig().MessageName() {
				case "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
					var hcm hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					hcm.AccessLog = logTo("requests.log", nil)
					if l.GetName() == "connect_terminate" {
						hcm.AccessLog = logTo("entry.log", ge400)
					}
					msg = &hcm
				case "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
					var tp tcpproxyv3.TcpProxy
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					tp.AccessLog = logTo("requests.log", nil)
					if tp.GetTunnelingConfig() != nil {
						tp.AccessLog = logTo("tunnel.log", flag("UF"))
					}
					msg = &tp
				default:
					continue
				}
				a, err := anypb.New(msg)
				if err != nil {
					t.Fatal(err)
				}
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			}
		}
	}
	return r
}

// podGone moves the endpoints of cluster to addr, where nothing listens.
func podGone(t *testing.T, r *xds.Resources, cluster, from, addr string) {
	t.Helper()
	for i, cla := range r.Endpoints {
		if cla.GetClusterName() != cluster {
			continue
		}
		b, err := protojson.Marshal(cla)
		if err != nil {
			t.Fatal(err)
		}
		moved := cla.ProtoReflect().New().Interface()
		if err := protojson.Unmarshal([]byte(strings.ReplaceAll(string(b), from, addr)), moved); err != nil {
			t.Fatal(err)
		}
		proto.Reset(r.Endpoints[i])
		proto.Merge(r.Endpoints[i], moved)
		return
	}
	t.Fatalf("no endpoints for %s", cluster)
}

// TestIstiodAccessLogsWritten: with the access logs istiod writes when a Telemetry turns
// them on, each line lands where Envoy writes it: a request in main_internal's connection
// manager's log; a CONNECT to an address no chain takes in main_internal's listener log (NR)
// and, refused 503, in connect_terminate's connection manager's log; a tunnel to a pod whose
// ztunnel does not answer in connect_originate's tcp_proxy log (UF, the pod's HBONE address),
// besides the tcp_proxy line of the connection that needed it and, since the waypoint answers
// that CONNECT 503 once its upstream failed (as ztunnel does), a line in connect_terminate's
// log. The lines the filters keep out (accepted CONNECTs, connections that found their chain)
// are not written.
func TestIstiodAccessLogsWritten(t *testing.T) {
	dir := t.TempDir()
	res := withIstiodAccessLogs(t, withoutAuthorizationPolicies(t, xdstest.Reviews(t)), dir)
	podGone(t, res, "inbound-vip|9300|tcp|reviews.mesh.local", podV1, "127.10.0.13")
	podGone(t, res, "inbound-vip|9300|tcp|reviews.mesh.local", podV2, "127.10.0.13")
	e := startFixture(t, res, false)
	pp := e.client("productpage")

	if got := tcpEcho(t, pp.to(fixtureVIP+":9300")); got != "" {
		t.Errorf("TCP to a pod without ztunnel: %q, want a closed stream", got)
	}
	if got := tcpEcho(t, pp.to("127.10.0.99:1234")); got != "" {
		t.Errorf("TCP to an address no chain takes: %q, want a refused stream", got)
	}
	hc := pp.to(fixtureVIP + ":9080")
	if code, _ := get(t, &http.Client{Timeout: 10 * time.Second}, "http://"+hc+"/reviews/1", nil); code != 200 {
		t.Errorf("GET: %d", code)
	}

	want := map[string][]string{
		"requests.log":               {"200 - " + hc + " 127.10.0.", "0 UF - 127.10.0.13:9300 127.10.0.10:9300"},
		"listener-main_internal.log": {"0 NR - - 127.10.0.99:1234"},
		"entry.log":                  {"503 NR 127.10.0.99:1234", "503 UF 127.10.0.10:9300"},
		"tunnel.log":                 {"0 UF - 127.10.0.13:15008 127.10.0.13:9300"},
	}
	deadline := time.Now().Add(5 * time.Second) // the files are flushed every second
	for name, lines := range want {
		for _, line := range lines {
			for {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				if strings.Contains(string(b), line) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: no line with %q in:\n%s", name, line, b)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for _, name := range []string{"listener-connect_terminate.log", "listener-connect_originate.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && len(b) > 0 {
			t.Errorf("%s: %q, want no line (every connection found its chain)", name, b)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "entry.log"))
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("entry.log has %d lines, want the two refused CONNECTs' only:\n%s", n, b)
	}
}

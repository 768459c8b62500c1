package xds

import (
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Access log filters as istiod writes them when a Telemetry turns access logs on for a
// waypoint: every listener's access_log filtered to NR, connect_terminate's connection manager
// to codes of 400 and more, the tunnelling tcp_proxy of connect_originate to UF; the service
// chains' connection managers and tcp_proxies unfiltered.
var (
	alNR = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}}}}
	alUF = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"UF"}}}}
	alGE400 = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400, RuntimeKey: "istio.io/unset"}}}}}
)

func stdoutLog(t *testing.T, f *accesslogv3.AccessLogFilter) []*accesslogv3.AccessLog {
	t.Helper()
	a, err := anypb.New(&filev3.FileAccessLog{Path: "/dev/stdout", AccessLogFormat: &filev3.FileAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "%RESPONSE_CODE%\n"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", Filter: f, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}}
}

// logFilters says which filter each place gets; nil means none.
type logFilters struct {
	listener, entryHCM, tunnel *accesslogv3.AccessLogFilter
}

// withAccessLogs adds access logs to the reviews fixture where istiod puts them.
func withAccessLogs(t *testing.T, lf logFilters) *Resources {
	t.Helper()
	r := mustLoad(t)
	for _, l := range r.Listeners {
		l.AccessLog = stdoutLog(t, lf.listener)
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var msg proto.Message
				switch f.GetTypedConfig().MessageName() {
				case "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
					var hcm hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					var filter *accesslogv3.AccessLogFilter
					if l.GetName() == "connect_terminate" {
						filter = lf.entryHCM
					}
					hcm.AccessLog = stdoutLog(t, filter)
					msg = &hcm
				case "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
					var tp tcpproxyv3.TcpProxy
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					var filter *accesslogv3.AccessLogFilter
					if tp.GetTunnelingConfig() != nil {
						filter = lf.tunnel
					}
					tp.AccessLog = stdoutLog(t, filter)
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

// TestIstiodAccessLogs: the access logs istiod adds to a waypoint for a Telemetry's
// accessLogging are taken whole, each where the waypoint writes it: main_internal's for the
// connections no chain takes, connect_terminate's connection manager's for refused CONNECT
// streams, connect_originate's tcp_proxy's for tunnels that fail to connect (on the clusters
// folded through it), the service chains' per request and connection. Each place whose filter
// would let through lines the waypoint does not write is refused, naming it.
func TestIstiodAccessLogs(t *testing.T) {
	istiod := logFilters{listener: alNR, entryHCM: alGE400, tunnel: alUF}
	snap, err := BuildResources("1", withAccessLogs(t, istiod))
	if err != nil {
		t.Fatalf("istiod's access logs: %v", err)
	}
	mi := snap.Listener("main_internal")
	if len(mi.AccessLog) != 1 || mi.AccessLog[0].Filter == nil {
		t.Errorf("main_internal access_log %+v, want the NR-filtered one", mi.AccessLog)
	}
	if e := snap.HBONEEntry(); len(e.HBONE.AccessLog) != 1 || e.HBONE.AccessLog[0].Filter == nil {
		t.Errorf("connect_terminate's connection manager access_log %+v, want the one filtered to 400 and more", e.HBONE.AccessLog)
	}
	v1 := snap.Cluster("inbound-vip|9080|http/v1|reviews.mesh.local")
	if len(v1.TunnelAccessLog) != 1 || v1.TunnelCluster == "" {
		t.Errorf("folded cluster: tunnel access_log %+v of %q, want connect_originate's", v1.TunnelAccessLog, v1.TunnelCluster)
	}
	for _, fc := range mi.FilterChains {
		switch {
		case fc.HTTP != nil && (len(fc.HTTP.AccessLog) != 1 || fc.HTTP.AccessLog[0].Filter != nil):
			t.Errorf("chain %q: HCM access_log %+v, want one unfiltered", fc.Name, fc.HTTP.AccessLog)
		case fc.TCPProxy != nil && (len(fc.TCPProxy.AccessLog) != 1 || fc.TCPProxy.AccessLog[0].Filter != nil):
			t.Errorf("chain %q: tcp_proxy access_log %+v, want one unfiltered", fc.Name, fc.TCPProxy.AccessLog)
		}
	}

	refused := []struct {
		name string
		lf   logFilters
		want string
	}{
		{"listeners unfiltered", logFilters{nil, alGE400, alUF}, "access_log: on the HBONE listener, only an access_log filtered to connections no filter chain takes"},
		{"listeners filtered to UF", logFilters{alUF, alGE400, alUF}, "access_log: on the HBONE listener, only an access_log filtered to connections no filter chain takes"},
		{"HBONE entry's HCM unfiltered", logFilters{alNR, nil, alUF}, "access_log: on the HBONE listener, only an access_log filtered to refused streams"},
		{"HBONE entry's HCM filtered to NR", logFilters{alNR, alNR, alUF}, "access_log: on the HBONE listener, only an access_log filtered to refused streams"},
		{"tunnel unfiltered", logFilters{alNR, alGE400, nil}, "the access_log of a tunnelling tcp_proxy is written for tunnels that fail to connect only"},
		{"tunnel filtered to NR", logFilters{alNR, alGE400, alNR}, "the access_log of a tunnelling tcp_proxy is written for tunnels that fail to connect only"},
	}
	for _, c := range refused {
		_, err := BuildResources("1", withAccessLogs(t, c.lf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// A listener that is not the HBONE entry, without a dubbo_proxy chain, refuses an
	// unfiltered access_log with the reason.
	r := withAccessLogs(t, istiod)
	for _, l := range r.Listeners {
		if l.GetName() == "main_internal" {
			l.AccessLog = stdoutLog(t, nil)
		}
	}
	if _, err := BuildResources("1", r); err == nil || !strings.Contains(err.Error(), `listener "main_internal": access_log: the listener has no envoy.filters.network.dubbo_proxy chain`) {
		t.Errorf("main_internal unfiltered: %v", err)
	}
}

// TestAccessLogUnknownCluster: an access log that sends to a gRPC service (OpenTelemetry, gRPC
// access log service) names a cluster the config must have, as Envoy requires of envoy_grpc.
func TestAccessLogUnknownCluster(t *testing.T) {
	for _, c := range []struct {
		name    string
		cluster string
		want    string
	}{
		{"a cluster of the config", "inbound-vip|9080|http/v1|reviews.mesh.local", ""},
		{"no such cluster", "outbound|9001||als.example", `a gRPC access log to unknown cluster "outbound|9001||als.example"`},
	} {
		r := mustLoad(t)
		als, err := anypb.New(&grpcalsv3.HttpGrpcAccessLogConfig{CommonConfig: &grpcalsv3.CommonGrpcAccessLogConfig{
			LogName: "als", TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: c.cluster}}}}})
		if err != nil {
			t.Fatal(err)
		}
		set := false
		for _, l := range r.Listeners {
			if l.GetName() != "main_internal" {
				continue
			}
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					var hcm hcmv3.HttpConnectionManager
					if set || f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
						continue
					}
					hcm.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.http_grpc", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: als}}}
					a, err := anypb.New(&hcm)
					if err != nil {
						t.Fatal(err)
					}
					f.ConfigType, set = &listenerv3.Filter_TypedConfig{TypedConfig: a}, true
				}
			}
		}
		if !set {
			t.Fatal("no connection manager in main_internal")
		}
		_, err = BuildResources("1", r)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

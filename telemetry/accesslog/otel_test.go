package accesslog

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	logcollpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

type logsCollector struct {
	logcollpb.UnimplementedLogsServiceServer
	mu   sync.Mutex
	recs []*logspb.LogRecord
	res  []*commonpb.KeyValue
}

func (c *logsCollector) Export(_ context.Context, req *logcollpb.ExportLogsServiceRequest) (*logcollpb.ExportLogsServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rl := range req.GetResourceLogs() {
		c.res = rl.GetResource().GetAttributes()
		for _, sl := range rl.GetScopeLogs() {
			c.recs = append(c.recs, sl.GetLogRecords()...)
		}
	}
	return &logcollpb.ExportLogsServiceResponse{}, nil
}

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// istiod's envoyOtelAls, as it renders it.
func otelEntry(t *testing.T, cluster string) *accesslogv3.AccessLog {
	a, err := anypb.New(&otelv3.OpenTelemetryAccessLogConfig{
		CommonConfig: &grpcv3.CommonGrpcAccessLogConfig{LogName: "otel-als", TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: cluster, Authority: "otel-collector.istio-system.svc.cluster.local"}}},
			FilterStateObjectsToLog: []string{"wasm.upstream_peer"}},
		DisableBuiltinLabels: true,
		Body:                 str(`%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%`),
		Attributes:           &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "path", Value: str("%REQ(:PATH)%")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: "otel", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
}

func TestOTelLogs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &logsCollector{}
	srv := grpc.NewServer()
	logcollpb.RegisterLogsServiceServer(srv, col)
	go srv.Serve(ln)
	defer srv.Stop()

	ls, err := Decode([]*accesslogv3.AccessLog{otelEntry(t, "outbound|4317||otel")})
	if err != nil {
		t.Fatal(err)
	}
	if o := ls[0].OTel; o == nil || o.Cluster != "outbound|4317||otel" || o.LogName != "otel-als" || len(o.Attrs) != 1 || len(o.Resource) != 0 {
		t.Fatalf("decoded %+v", ls[0])
	}
	s := &Sinks{Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
		if cluster != "outbound|4317||otel" {
			t.Errorf("dialed %q", cluster)
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	}}
	for _, p := range []string{"/a", "/b"} {
		req := &l7.Request{Method: "GET", Path: []byte(p)}
		s.Emit(ls, &Record{Start: time.Now(), Request: req, Code: 200})
	}
	s.Close() // exports what is pending
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.recs) != 2 {
		t.Fatalf("%d records", len(col.recs))
	}
	r := col.recs[1]
	if r.GetBody().GetStringValue() != "GET /b 200" || r.GetAttributes()[0].GetValue().GetStringValue() != "/b" || r.GetTimeUnixNano() == 0 {
		t.Errorf("record %v", r)
	}
}

func TestOTelLogsRefused(t *testing.T) {
	for _, c := range []struct {
		m    *otelv3.OpenTelemetryAccessLogConfig
		want string
	}{
		{&otelv3.OpenTelemetryAccessLogConfig{}, "common_config: required"},
		{&otelv3.OpenTelemetryAccessLogConfig{CommonConfig: &grpcv3.CommonGrpcAccessLogConfig{TransportApiVersion: corev3.ApiVersion_V3}}, "envoy_grpc.cluster_name: required"},
		{&otelv3.OpenTelemetryAccessLogConfig{HttpService: &corev3.HttpService{}}, "http_service"},
	} {
		a, _ := anypb.New(c.m)
		_, err := Decode([]*accesslogv3.AccessLog{{Name: "otel", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.m, err, c.want)
		}
	}
}

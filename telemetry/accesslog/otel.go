package accesslog

import (
	"context"
	"fmt"
	"sync"
	"time"

	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	logcollpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/clustergrpc"
)

// OTelMaxPending is how many log records may wait for an OpenTelemetry
// collector; past it new ones are dropped (and counted), so that logging
// never blocks a request.
const OTelMaxPending = 16 << 10

// OTelLogs is an envoy.access_loggers.open_telemetry logger: a log record
// per request, exported over OTLP gRPC (LogsService/Export) to Cluster in
// batches every FlushInterval. Read-only.
type OTelLogs struct {
	// Cluster is the collector (grpc_service.envoy_grpc), Authority its
	// :authority (default the cluster name).
	Cluster, Authority string
	LogName            string
	// Body formats the record's body (nil: none); Attrs its attributes.
	Body  *Format
	Attrs []OTelAttr
	// Resource is the resource's attributes: resource_attributes, and
	// unless disable_builtin_labels Envoy's log_name.
	Resource      []*commonpb.KeyValue
	FlushInterval time.Duration
}

// OTelAttr is one attribute of a record, a formatted string.
type OTelAttr struct {
	Key   string
	Value *Format
}

var otelAllowlist = pbcheck.Allowlist{
	"envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig": pbcheck.F(
		"common_config", "disable_builtin_labels", "resource_attributes", "body", "attributes"),
	// filter_state_objects_to_log feeds the gRPC access log service's
	// filter_state map, which OTLP records do not have; Envoy's OpenTelemetry
	// logger ignores it too (istiod always sets it).
	"envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig": pbcheck.F(
		"log_name", "grpc_service", "transport_api_version", "buffer_flush_interval", "filter_state_objects_to_log"),
	"envoy.config.core.v3.GrpcService":           pbcheck.F("envoy_grpc", "timeout"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc": pbcheck.F("cluster_name", "authority"),
	// Values: body and attributes are checked to be strings where decoded
	// (a clearer message); resource attributes are sent as given.
	"opentelemetry.proto.common.v1.AnyValue": pbcheck.F("string_value", "bool_value", "int_value", "double_value",
		"array_value", "kvlist_value", "bytes_value"),
	"opentelemetry.proto.common.v1.KeyValueList": pbcheck.F("values"),
	"opentelemetry.proto.common.v1.KeyValue":     pbcheck.F("key", "value"),
	"opentelemetry.proto.common.v1.ArrayValue":   pbcheck.F("values"),
}

func decodeOTel(pb *otelv3.OpenTelemetryAccessLogConfig) (*OTelLogs, error) {
	if err := otelAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	c, err := decodeCommon(pb.GetCommonConfig(), otelAllowlist)
	if err != nil {
		return nil, err
	}
	o := &OTelLogs{Cluster: c.cluster, Authority: c.authority, LogName: c.logName, FlushInterval: c.flush}
	if b := pb.GetBody(); b != nil {
		sv, ok := b.GetValue().(*commonpb.AnyValue_StringValue)
		if !ok {
			return nil, pbcheck.ErrAt("body", "only a string_value is supported")
		}
		f, err := Compile(sv.StringValue, false)
		if err != nil {
			return nil, pbcheck.At("body", err)
		}
		o.Body = f
	}
	for i, kv := range pb.GetAttributes().GetValues() {
		sv, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue)
		if !ok {
			return nil, pbcheck.ErrAt(pbcheck.Idx("attributes.values", i), "attribute %q: only a string_value is supported", kv.GetKey())
		}
		f, err := Compile(sv.StringValue, false)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("attributes.values", i), err)
		}
		o.Attrs = append(o.Attrs, OTelAttr{Key: kv.GetKey(), Value: f})
	}
	o.Resource = append(o.Resource, pb.GetResourceAttributes().GetValues()...)
	if !pb.GetDisableBuiltinLabels() {
		o.Resource = append(o.Resource, &commonpb.KeyValue{Key: "log_name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: o.LogName}}})
	}
	return o, nil
}

// otelSink is one collector's pending records and its exporter's wake-up.
type otelSink struct {
	mu      sync.Mutex
	pending []*logspb.LogRecord // guarded by mu
	closed  bool                // guarded by mu
	wake    chan struct{}
}

// record makes r's log record under o.
func (o *OTelLogs) record(r *Record) *logspb.LogRecord {
	lr := &logspb.LogRecord{TimeUnixNano: uint64(r.Start.UnixNano()), ObservedTimeUnixNano: uint64(time.Now().UnixNano())}
	if o.Body != nil {
		lr.Body = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(o.Body.Append(nil, r))}}
	}
	for _, a := range o.Attrs {
		lr.Attributes = append(lr.Attributes, &commonpb.KeyValue{Key: a.Key,
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(a.Value.Append(nil, r))}}})
	}
	return lr
}

// emitOTel queues r's record for o's collector.
func (s *Sinks) emitOTel(o *OTelLogs, r *Record) {
	sk := s.otelSink(o)
	if sk == nil {
		return
	}
	lr := o.record(r)
	sk.mu.Lock()
	if sk.closed || len(sk.pending) >= OTelMaxPending {
		sk.mu.Unlock()
		otelDropped.Inc()
		return
	}
	sk.pending = append(sk.pending, lr)
	sk.mu.Unlock()
}

// otelSink returns o's sink, starting its exporter on first use: one per
// collector cluster, authority, log name and resource.
func (s *Sinks) otelSink(o *OTelLogs) *otelSink {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d", o.Cluster, o.Authority, o.LogName, o.FlushInterval)
	for _, kv := range o.Resource {
		key += "\x00" + kv.GetKey() + "=" + kv.GetValue().String() // the same config each reload: the same sink
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.Dial == nil {
		return nil
	}
	if sk := s.otel[key]; sk != nil {
		return sk
	}
	conn, err := clustergrpc.NewClient(o.Authority, o.Cluster, s.Dial)
	if err != nil {
		s.logger().Error("access log: cannot make the OTLP logs client", "cluster", o.Cluster, "error", err)
		return nil
	}
	if s.otel == nil {
		s.otel = map[string]*otelSink{}
	}
	sk := &otelSink{wake: make(chan struct{}, 1)}
	s.otel[key] = sk
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conn.Close()
		s.runOTel(o, sk, logcollpb.NewLogsServiceClient(conn))
	}()
	return sk
}

// runOTel exports the sink's records every FlushInterval, and once more
// when the sink is closed. A failed export drops its records, as Envoy's
// logger does.
func (s *Sinks) runOTel(o *OTelLogs, sk *otelSink, client logcollpb.LogsServiceClient) {
	t := time.NewTicker(o.FlushInterval)
	defer t.Stop()
	scope := &commonpb.InstrumentationScope{Name: "waypoint"}
	for {
		select {
		case <-t.C:
		case <-sk.wake:
		}
		sk.mu.Lock()
		recs, closed := sk.pending, sk.closed
		sk.pending = nil
		sk.mu.Unlock()
		if len(recs) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := client.Export(ctx, &logcollpb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
				Resource:  &resourcepb.Resource{Attributes: o.Resource},
				ScopeLogs: []*logspb.ScopeLogs{{Scope: scope, LogRecords: recs}},
			}}})
			cancel()
			if err != nil {
				otelDropped.Add(float64(len(recs)))
				s.logger().Warn("access log: OTLP export failed", "cluster", o.Cluster, "records", len(recs), "error", err)
			}
		}
		if closed {
			return
		}
	}
}

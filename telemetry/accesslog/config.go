package accesslog

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// Stdout is the Path of envoy.access_loggers.stdout.
const Stdout = "/dev/stdout"

// Logger is one decoded access_log entry: where lines go and how they
// look. Read-only.
type Logger struct {
	// Path is the file (envoy.access_loggers.file's path), or Stdout;
	// empty for an OpenTelemetry logger.
	Path string
	// OTel, when set, sends records to an OpenTelemetry collector
	// (envoy.access_loggers.open_telemetry) instead of a file.
	OTel *OTelLogs
	// ALS, when set, streams entries to Envoy's gRPC access log service
	// (envoy.access_loggers.http_grpc, tcp_grpc) instead.
	ALS    *GRPCLogs
	Format *Format
	// Filter decides which records get a line (nil: all of them).
	Filter *Filter
}

// MayLog reports whether the logger can write a line for a record of
// response code code whose flags include none of absent (see
// Filter.MayMatch).
func (l *Logger) MayLog(code int, absent filters.Flags) bool { return l.Filter.MayMatch(code, absent) }

// MayLogAny reports whether any of loggers can (see MayLog).
func MayLogAny(loggers []*Logger, code int, absent filters.Flags) bool {
	for _, l := range loggers {
		if l.MayLog(code, absent) {
			return true
		}
	}
	return false
}

var allowlist = pbcheck.Allowlist{
	"envoy.config.accesslog.v3.AccessLog":                       pbcheck.F("name", "typed_config", "filter*"), // filter: DecodeFilter
	"envoy.extensions.access_loggers.file.v3.FileAccessLog":     pbcheck.F("path", "format", "json_format", "typed_json_format", "log_format"),
	"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog": pbcheck.F("log_format"),
	"envoy.extensions.access_loggers.stream.v3.StderrAccessLog": pbcheck.F("log_format"),
	"envoy.config.core.v3.SubstitutionFormatString":             pbcheck.F("text_format", "json_format", "text_format_source", "omit_empty_values", "content_type", "json_format_options"),
	// sort_properties: JSON lines are written with their keys sorted either way (the order of
	// a Struct's keys is no part of its meaning); istiod writes an empty one.
	"envoy.config.core.v3.JsonFormatOptions": pbcheck.F("sort_properties"),
	"envoy.config.core.v3.DataSource":        pbcheck.F("inline_string", "inline_bytes"),
}

// Decode decodes an access_log list (of an HttpConnectionManager or a
// TcpProxy); errors name the field relative to the list's owner.
func Decode(pbs []*accesslogv3.AccessLog) ([]*Logger, error) {
	var out []*Logger
	for i, pb := range pbs {
		l, err := decodeOne(pb)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("access_log", i), err)
		}
		out = append(out, l)
	}
	return out, nil
}

func decodeOne(pb *accesslogv3.AccessLog) (*Logger, error) {
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	a := pb.GetTypedConfig()
	if a == nil {
		return nil, pbcheck.ErrAt("typed_config", "required")
	}
	switch a.MessageName() {
	case "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig":
		var m otelv3.OpenTelemetryAccessLogConfig
		if err := a.UnmarshalTo(&m); err != nil {
			return nil, pbcheck.At("typed_config", err)
		}
		o, err := decodeOTel(&m)
		if err != nil {
			return nil, pbcheck.At("typed_config", err)
		}
		l := &Logger{OTel: o}
		if pb.GetFilter() != nil {
			if l.Filter, err = DecodeFilter(pb.GetFilter()); err != nil {
				return nil, pbcheck.At("filter", err)
			}
		}
		return l, nil
	case "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig", "envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig":
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, pbcheck.At("typed_config", err)
		}
		g, err := decodeALS(m)
		if err != nil {
			return nil, pbcheck.At("typed_config", err)
		}
		l := &Logger{ALS: g}
		if pb.GetFilter() != nil {
			if l.Filter, err = DecodeFilter(pb.GetFilter()); err != nil {
				return nil, pbcheck.At("filter", err)
			}
		}
		return l, nil
	case "envoy.extensions.access_loggers.file.v3.FileAccessLog", "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
		"envoy.extensions.access_loggers.stream.v3.StderrAccessLog":
	default:
		return nil, pbcheck.ErrAt("typed_config", "unsupported access logger %q (%s)", pb.GetName(), a.GetTypeUrl())
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, pbcheck.At("typed_config", err)
	}
	if err := allowlist.Check(m.ProtoReflect()); err != nil {
		return nil, pbcheck.At("typed_config", err)
	}
	var (
		path string
		sfs  *corev3.SubstitutionFormatString
		f    *Format
	)
	switch c := m.(type) {
	case *filev3.FileAccessLog:
		if c.GetPath() == "" {
			return nil, pbcheck.ErrAt("typed_config.path", "required")
		}
		path = c.GetPath()
		switch lf := c.GetAccessLogFormat().(type) {
		case *filev3.FileAccessLog_Format:
			f, err = Compile(lf.Format, false)
		case *filev3.FileAccessLog_JsonFormat:
			f, err = jsonFormat(lf.JsonFormat, false)
		case *filev3.FileAccessLog_TypedJsonFormat:
			f, err = jsonFormat(lf.TypedJsonFormat, false)
		case *filev3.FileAccessLog_LogFormat:
			sfs = lf.LogFormat
		}
	case *streamv3.StdoutAccessLog:
		path, sfs = Stdout, c.GetLogFormat()
	case *streamv3.StderrAccessLog:
		path, sfs = "/dev/stderr", c.GetLogFormat()
	default:
		return nil, fmt.Errorf("typed_config: unsupported access logger %s (%s)", pb.GetName(), a.GetTypeUrl())
	}
	if err != nil {
		return nil, pbcheck.At("typed_config", err)
	}
	if sfs != nil {
		if f, err = substitution(sfs); err != nil {
			return nil, pbcheck.At("typed_config.log_format", err)
		}
	}
	if f == nil {
		f, _ = Compile(EnvoyFormat, false)
	}
	l := &Logger{Path: path, Format: f}
	if pb.GetFilter() != nil {
		if l.Filter, err = DecodeFilter(pb.GetFilter()); err != nil {
			return nil, pbcheck.At("filter", err)
		}
	}
	return l, nil
}

func substitution(pb *corev3.SubstitutionFormatString) (*Format, error) {
	omit := pb.GetOmitEmptyValues()
	switch ff := pb.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		return Compile(ff.TextFormat, omit)
	case *corev3.SubstitutionFormatString_TextFormatSource:
		switch s := ff.TextFormatSource.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			return Compile(s.InlineString, omit)
		case *corev3.DataSource_InlineBytes:
			return Compile(string(s.InlineBytes), omit)
		}
		return nil, pbcheck.ErrAt("text_format_source", "only inline_string and inline_bytes are supported")
	case *corev3.SubstitutionFormatString_JsonFormat:
		return jsonFormat(ff.JsonFormat, omit)
	}
	return nil, fmt.Errorf("one of text_format, text_format_source or json_format is required")
}

func jsonFormat(st *structpb.Struct, omit bool) (*Format, error) {
	fields := map[string]string{}
	for k, v := range st.GetFields() {
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, fmt.Errorf("json_format[%q]: only string values are supported", k)
		}
		fields[k] = sv.StringValue
	}
	return CompileJSON(fields, omit)
}

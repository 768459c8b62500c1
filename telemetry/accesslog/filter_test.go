package accesslog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func statusFilter(op accesslogv3.ComparisonFilter_Op, v uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: v, RuntimeKey: "istio.io/unset"}}}}}
}

func durationFilter(op accesslogv3.ComparisonFilter_Op, ms uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_DurationFilter{DurationFilter: &accesslogv3.DurationFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: ms}}}}}
}

func flagFilter(flags ...string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}}
}

func andFilter(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
}

func orFilter(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: fs}}}
}

// TestFilters: what istiod writes when a Telemetry turns access logs on (status_code_filter
// GE 400 on connect_terminate, response_flag_filter NR on listeners, UF on connect_originate's
// tcp_proxy) and the other filters, on records and as MayMatch sees them.
func TestFilters(t *testing.T) {
	uf, nr := filters.FlagUF, filters.FlagNR
	rec := func(code int, flags filters.Flags, d time.Duration) *Record {
		return &Record{Code: code, Flags: flags, Duration: d}
	}
	cases := []struct {
		name   string
		pb     *accesslogv3.AccessLogFilter
		logged []*Record
		not    []*Record
		// may: MayMatch(code, absent) for {200, none}, {0, NR}, {0, UF}
		may [3]bool
	}{
		{"status GE 400 (istiod's connect_terminate)", statusFilter(accesslogv3.ComparisonFilter_GE, 400),
			[]*Record{rec(400, 0, 0), rec(503, uf, 0)}, []*Record{rec(200, 0, 0), rec(0, nr, 0), rec(399, 0, 0)}, [3]bool{false, false, false}},
		{"status EQ 0 (no response)", statusFilter(accesslogv3.ComparisonFilter_EQ, 0),
			[]*Record{rec(0, 0, 0)}, []*Record{rec(200, 0, 0)}, [3]bool{false, true, true}},
		{"status NE 200", statusFilter(accesslogv3.ComparisonFilter_NE, 200),
			[]*Record{rec(404, 0, 0), rec(0, 0, 0)}, []*Record{rec(200, uf, 0)}, [3]bool{false, true, true}},
		{"status LE 299", statusFilter(accesslogv3.ComparisonFilter_LE, 299),
			[]*Record{rec(200, 0, 0), rec(0, 0, 0)}, []*Record{rec(300, 0, 0)}, [3]bool{true, true, true}},
		{"flags NR (istiod's listeners)", flagFilter("NR"),
			[]*Record{rec(0, nr, 0), rec(0, nr|uf, 0)}, []*Record{rec(0, 0, 0), rec(503, uf, 0)}, [3]bool{true, false, true}},
		{"flags UF (istiod's connect_originate)", flagFilter("UF"),
			[]*Record{rec(0, uf, 0)}, []*Record{rec(0, nr, 0), rec(200, 0, 0)}, [3]bool{true, true, false}},
		{"any flag", flagFilter(),
			[]*Record{rec(0, nr, 0), rec(200, uf, 0)}, []*Record{rec(503, 0, 0)}, [3]bool{true, true, true}},
		{"duration GE 1000 ms", durationFilter(accesslogv3.ComparisonFilter_GE, 1000),
			[]*Record{rec(200, 0, time.Second)}, []*Record{rec(200, 0, 999*time.Millisecond)}, [3]bool{true, true, true}},
		{"not_health_check", &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{
			NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}},
			[]*Record{rec(200, 0, 0)}, nil, [3]bool{true, true, true}},
		{"and: 5xx with UF", andFilter(statusFilter(accesslogv3.ComparisonFilter_GE, 500), flagFilter("UF")),
			[]*Record{rec(503, uf, 0)}, []*Record{rec(503, 0, 0), rec(200, uf, 0)}, [3]bool{false, false, false}},
		{"or: 5xx or NR", orFilter(statusFilter(accesslogv3.ComparisonFilter_GE, 500), flagFilter("NR")),
			[]*Record{rec(503, 0, 0), rec(0, nr, 0)}, []*Record{rec(200, uf, 0)}, [3]bool{true, false, true}},
	}
	for _, c := range cases {
		f, err := DecodeFilter(c.pb)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, r := range c.logged {
			if !f.Match(r) {
				t.Errorf("%s: %d %v %v not logged", c.name, r.Code, r.Flags, r.Duration)
			}
		}
		for _, r := range c.not {
			if f.Match(r) {
				t.Errorf("%s: %d %v %v logged", c.name, r.Code, r.Flags, r.Duration)
			}
		}
		may := [3]bool{f.MayMatch(200, 0), f.MayMatch(0, nr), f.MayMatch(0, uf)}
		if may != c.may {
			t.Errorf("%s: MayMatch %v, want %v", c.name, may, c.may)
		}
	}
	grpcRec := func(code int, where, grpcStatus string) *Record {
		resp := &l7.Response{Status: code}
		switch where {
		case "trailer":
			resp.Trailer.Set("grpc-status", grpcStatus)
		case "header":
			resp.Header.Set("grpc-status", grpcStatus)
		}
		return &Record{Code: code, Response: resp}
	}
	unavailable := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_GrpcStatusFilter{GrpcStatusFilter: &accesslogv3.GrpcStatusFilter{
		Statuses: []accesslogv3.GrpcStatusFilter_Status{accesslogv3.GrpcStatusFilter_UNAVAILABLE, accesslogv3.GrpcStatusFilter_UNAUTHENTICATED}}}}
	notOK := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_GrpcStatusFilter{GrpcStatusFilter: &accesslogv3.GrpcStatusFilter{
		Statuses: []accesslogv3.GrpcStatusFilter_Status{accesslogv3.GrpcStatusFilter_OK}, Exclude: true}}}
	runtime := func(pct uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_RuntimeFilter{RuntimeFilter: &accesslogv3.RuntimeFilter{
			RuntimeKey: "access_log.sampled", PercentSampled: &typev3.FractionalPercent{Numerator: pct}}}}
	}
	for _, c := range []struct {
		name        string
		pb          *accesslogv3.AccessLogFilter
		logged, not []*Record
	}{
		{"grpc_status UNAVAILABLE, UNAUTHENTICATED", unavailable,
			[]*Record{grpcRec(200, "trailer", "14"), grpcRec(200, "header", "16"), grpcRec(503, "", ""), grpcRec(401, "", "")},
			[]*Record{grpcRec(200, "trailer", "0"), grpcRec(200, "trailer", "7"), grpcRec(403, "", ""), grpcRec(200, "trailer", "x"), {Code: 0}}},
		{"grpc_status not OK (exclude)", notOK,
			[]*Record{grpcRec(200, "trailer", "2"), grpcRec(503, "", ""), {Code: 0}},
			[]*Record{grpcRec(200, "trailer", "0"), grpcRec(200, "header", "0")}},
		{"runtime 100%", runtime(100), []*Record{rec(200, 0, 0), rec(503, uf, 0)}, nil},
		{"runtime 0%", runtime(0), nil, []*Record{rec(200, 0, 0), rec(503, uf, 0)}},
	} {
		f, err := DecodeFilter(c.pb)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for i, r := range c.logged {
			if !f.Match(r) {
				t.Errorf("%s: record %d (%d) not logged", c.name, i, r.Code)
			}
		}
		for i, r := range c.not {
			if f.Match(r) {
				t.Errorf("%s: record %d (%d) logged", c.name, i, r.Code)
			}
		}
		if !f.MayMatch(200, 0) {
			t.Errorf("%s: MayMatch false", c.name)
		}
	}
	var nilFilter *Filter
	if !nilFilter.Match(rec(200, 0, 0)) || !nilFilter.MayMatch(200, 0) {
		t.Errorf("no filter: not everything logged")
	}
}

func TestFilterErrors(t *testing.T) {
	cases := []struct {
		pb   *accesslogv3.AccessLogFilter
		want string
	}{
		{&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
			Name: "envoy.access_loggers.extension_filters.other", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: &anypb.Any{
				TypeUrl: "type.googleapis.com/other.Filter"}}}}},
			`extension_filter: "envoy.access_loggers.extension_filters.other" (type.googleapis.com/other.Filter) is not supported: only envoy.access_loggers.extension_filters.cel`},
		{&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_TraceableFilter{TraceableFilter: &accesslogv3.TraceableFilter{}}},
			"traceable_filter: not supported yet"},
		{andFilter(flagFilter("UF")), "and_filter.filters: want at least 2 filters, got 1"},
		// istiod's Telemetry filter.expression, beside its own NR or UF filter.
		{andFilter(flagFilter("NR"), &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
			Name: "envoy.access_loggers.extension_filters.cel"}}}),
			`and_filter.filters[1].extension_filter: "envoy.access_loggers.extension_filters.cel" () is not supported: only envoy.access_loggers.extension_filters.cel`},
		{orFilter(flagFilter("UF"), flagFilter("XX")), `or_filter.filters[1].response_flag_filter.flags[0]: unknown response flag "XX"`},
		{&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
			Comparison: &accesslogv3.ComparisonFilter{}}}}, "status_code_filter.comparison.value: required"},
		{&accesslogv3.AccessLogFilter{}, "a filter is required"},
	}
	for _, c := range cases {
		if _, err := DecodeFilter(c.pb); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

// TestFilteredLogger: an access_log entry with a filter, decoded and emitted, writes the
// lines that pass only.
func TestFilteredLogger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	typed, err := anypb.New(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "%RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}}})
	if err != nil {
		t.Fatal(err)
	}
	loggers, err := Decode([]*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}, Filter: statusFilter(accesslogv3.ComparisonFilter_GE, 400)}})
	if err != nil {
		t.Fatal(err)
	}
	if MayLogAny(loggers, 200, 0) || !MayLogAny(loggers, 503, 0) {
		t.Errorf("MayLogAny: a filter GE 400 logs 200 %v, 503 %v", MayLogAny(loggers, 200, 0), MayLogAny(loggers, 503, 0))
	}
	s := &Sinks{}
	for _, code := range []int{200, 503, 404, 0} {
		s.Emit(loggers, &Record{Code: code, Flags: filters.FlagUF})
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "503 UF\n404 UF\n" {
		t.Errorf("lines %q, want the 503 and the 404 only", got)
	}
	bad := []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}, Filter: flagFilter("ZZ")}}
	if _, err := Decode(bad); err == nil || !strings.HasPrefix(err.Error(), "access_log[0].filter.response_flag_filter.flags[0]: unknown") {
		t.Errorf("bad filter: %v", err)
	}
}

// TestDecodeLoggers: the access loggers and formats istiod writes are taken; another logger is
// refused by name and type.
func TestDecodeLoggers(t *testing.T) {
	entry := func(name string, m proto.Message) *accesslogv3.AccessLog {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return &accesslogv3.AccessLog{Name: name, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
	}
	json, err := structpb.NewStruct(map[string]any{"path": "%REQ(:PATH)%", "code": "%RESPONSE_CODE%"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		pb   *accesslogv3.AccessLog
		want string // "" when taken
	}{
		{"istiod's JSON labels, with json_format_options", entry("envoy.access_loggers.file", &filev3.FileAccessLog{Path: "/dev/stdout",
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: json}, JsonFormatOptions: &corev3.JsonFormatOptions{}}}}), ""},
		{"sorted JSON", entry("envoy.access_loggers.file", &filev3.FileAccessLog{Path: "/dev/stdout",
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: json}, JsonFormatOptions: &corev3.JsonFormatOptions{SortProperties: true}}}}), ""},
		{"stdout", entry("envoy.access_loggers.stdout", &streamv3.StdoutAccessLog{}), ""},
		{"OpenTelemetry logs (istiod's envoyOtelAls)", entry("envoy.access_loggers.open_telemetry", &grpcv3.CommonGrpcAccessLogConfig{LogName: "otel"}),
			`access_log[0].typed_config: unsupported access logger "envoy.access_loggers.open_telemetry" (type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig)`},
	}
	for _, c := range cases {
		_, err := Decode([]*accesslogv3.AccessLog{c.pb})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func celFilter(expr string) *accesslogv3.AccessLogFilter {
	a, _ := anypb.New(&celv3.ExpressionFilter{Expression: expr})
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
		Name: "envoy.access_loggers.extension_filters.cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: a}}}}
}

// TestCELFilter: istiod's Telemetry filter.expression, as Envoy's CEL filter evaluates it: an
// error (an absent attribute) or a value that is not a bool is not logged.
func TestCELFilter(t *testing.T) {
	req := func(method, path string, code int) *Record {
		r := &Record{Request: &l7.Request{Method: method, Path: []byte(path), Authority: []byte("reviews:9080")}, Code: code}
		r.Request.Header.Add("x-user", "jason")
		return r
	}
	cases := []struct {
		expr string
		r    *Record
		want bool
	}{
		{"response.code >= 400", req("GET", "/", 404), true},
		{"response.code >= 400", req("GET", "/", 200), false},
		{"response.code >= 400", &Record{Code: 0}, false}, // TCP: no response
		{`request.url_path == "/a" && request.method == "GET"`, req("GET", "/a?x=1", 200), true},
		{`request.headers["x-user"] == "jason"`, req("GET", "/", 200), true},
		{`request.headers["x-absent"] == "x"`, req("GET", "/", 200), false},
		{`request.host`, req("GET", "/", 200), false}, // not a bool
		{`request.host.startsWith("reviews")`, req("GET", "/", 200), true},
	}
	if _, err := DecodeFilter(celFilter("response.code >=")); err == nil ||
		!strings.HasPrefix(err.Error(), `extension_filter.typed_config.expression: CEL expression "response.code >=": ERROR: <input>:1:`) {
		t.Errorf("a bad expression: %v", err)
	}
	if _, err := DecodeFilter(celFilter("reqest.code == 1")); err == nil || !strings.Contains(err.Error(), "undeclared reference to 'reqest'") {
		t.Errorf("an unknown attribute: %v", err)
	}
	for _, c := range cases {
		f, err := DecodeFilter(celFilter(c.expr))
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := f.Match(c.r); got != c.want {
			t.Errorf("%s on %+v: %v, want %v", c.expr, c.r.Request, got, c.want)
		}
		if !f.MayMatch(200, 0) {
			t.Errorf("%s: MayMatch false", c.expr)
		}
	}
}

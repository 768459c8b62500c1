package metrics

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	statspb "istio.io/api/envoy/extensions/stats"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// StatsFilterName and StatsTypeURL identify Istio's stats filter, which
// istiod adds to a waypoint's chains (HTTP filter, and network filter on a
// TCP chain) with a Telemetry's metrics: the standard metrics it records
// and the overrides of the Telemetry API (a metric disabled, a tag
// removed).
const (
	StatsFilterName = "istio.stats"
	StatsTypeURL    = "type.googleapis.com/stats.PluginConfig"
)

// The standard metrics, by the names the stats filter's overrides use (the
// metric names without "istio_"). The gRPC message counts are not recorded
// by the waypoint: an override of them has nothing to change.
const (
	mRequests metric = iota
	mDuration
	mRequestBytes
	mResponseBytes
	mTCPOpened
	mTCPClosed
	mTCPSent
	mTCPReceived
	mRequestMessages
	mResponseMessages
	numMetrics
)

type metric uint8

var metricNames = [numMetrics]string{
	"requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes",
	"tcp_connections_opened_total", "tcp_connections_closed_total", "tcp_sent_bytes_total", "tcp_received_bytes_total",
	"request_messages_total", "response_messages_total",
}

// Overrides are a stats filter's metric overrides: metrics not recorded
// (drop), tags removed and tags set by expression (dimensions). A removed
// tag is recorded with an empty value, which Prometheus treats as the
// label's absence, so that series differing only by it are one. A
// dimension names a standard tag (its value replaced) or a new one (the
// metric's label set grows by it, see Recorder). Read-only; nil means none.
type Overrides struct {
	drop  [numMetrics]bool
	blank [numMetrics][]int // indexes into labelNames, ascending
	dims  [numMetrics][]dimension
	// added are the names of each metric's added tags, sorted: the labels
	// after labelNames of its series.
	added [numMetrics][]string
	// exprs are the distinct expressions of dims, each evaluated once per
	// request (Eval).
	exprs []*accesslog.CEL
}

// dimension is a tag set by expression.
type dimension struct {
	tag  string
	expr int // index into Overrides.exprs
	std  int // index into labelNames for a standard tag, else -1 (an added tag, in added's order)
}

var statsAllowlist = pbcheck.Allowlist{
	"stats.PluginConfig": pbcheck.F("reporter", "disable_host_header_fallback", "metrics*"), // metrics: each by hand
}

// NewOverrides decodes a stats filter's config (a PluginConfig, or the
// Struct of a TypedStruct). The waypoint records Istio's standard metrics
// as a SERVER_GATEWAY reporter (reporter="waypoint") and never takes a
// destination from the Host header; it implements the overrides that drop
// a metric, remove tags, or set tags by expression (dimensions: CEL over
// the request's attributes, compiled by the access log's CompileCEL; an
// attribute the waypoint does not have fails to compile, naming the tag).
// Custom metrics (definitions, a metric name Istio does not define) and the
// other settings are refused by name: accepting them and recording
// something else would be silent. It returns nil for a config that
// overrides nothing; errors name the field.
func NewOverrides(cfg proto.Message) (*Overrides, error) {
	pb, ok := cfg.(*statspb.PluginConfig)
	if st, isStruct := cfg.(*structpb.Struct); isStruct {
		b, err := protojson.Marshal(st)
		if err != nil {
			return nil, err
		}
		pb = &statspb.PluginConfig{}
		if err := protojson.Unmarshal(b, pb); err != nil {
			return nil, err
		}
		ok = true
	}
	if !ok {
		return nil, fmt.Errorf("%s: config is %T, want stats.PluginConfig", StatsFilterName, cfg)
	}
	if err := statsAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetReporter() != statspb.Reporter_SERVER_GATEWAY {
		return nil, pbcheck.ErrAt("reporter", "%v is not supported (a waypoint reports as SERVER_GATEWAY, reporter=\"waypoint\")", pb.GetReporter())
	}
	if !pb.GetDisableHostHeaderFallback() {
		return nil, pbcheck.ErrAt("disable_host_header_fallback", "false is not supported (the waypoint never takes a destination from the Host header)")
	}
	ov := &Overrides{}
	exprs := map[string]int{}
	for i, m := range pb.GetMetrics() {
		if err := ov.addDimensions(m, exprs); err != nil {
			return nil, pbcheck.At(pbcheck.Idx("metrics", i), err)
		}
		if err := ov.add(m); err != nil {
			return nil, pbcheck.At(pbcheck.Idx("metrics", i), err)
		}
	}
	ov.sortDimensions()
	if ov.empty() {
		return nil, nil
	}
	return ov, nil
}

func (ov *Overrides) empty() bool {
	for m := range numMetrics {
		if ov.drop[m] || len(ov.blank[m]) > 0 || len(ov.dims[m]) > 0 {
			return false
		}
	}
	return true
}

// which returns the metrics a MetricConfig names: one, or all for no name
// (ALL_METRICS); none for a metric the waypoint does not record.
func which(m *statspb.MetricConfig) ([]metric, error) {
	switch name := m.GetName(); {
	case name == "":
		all := make([]metric, 0, numMetrics)
		for i := range numMetrics {
			all = append(all, i)
		}
		return all, nil
	default:
		i := slices.Index(metricNames[:], name)
		if i < 0 {
			return nil, pbcheck.ErrAt("name", "unknown metric %q (custom metrics are not supported yet)", name)
		}
		return []metric{metric(i)}, nil
	}
}

// addDimensions compiles m's dimensions (CEL expressions over the
// request's attributes, as the access log's CEL filters read them; exprs
// indexes the distinct ones). As in Istio's filter, a later config's
// expression for a tag replaces an earlier one.
func (ov *Overrides) addDimensions(m *statspb.MetricConfig, exprs map[string]int) error {
	if len(m.GetDimensions()) == 0 {
		return nil
	}
	ws, err := which(m)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(m.GetDimensions()))
	for k := range m.GetDimensions() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, tag := range keys {
		at := "dimensions[" + tag + "]"
		if !validLabel(tag) {
			return pbcheck.ErrAt(at, "%q is not a valid Prometheus label name", tag)
		}
		text := m.GetDimensions()[tag]
		ei, ok := exprs[text]
		if !ok {
			c, err := accesslog.CompileCEL(text)
			if err != nil {
				return pbcheck.At(at, err)
			}
			ei = len(ov.exprs)
			ov.exprs = append(ov.exprs, c)
			exprs[text] = ei
		}
		std := slices.Index(labelNames, tag)
		for _, w := range ws {
			if w >= mTCPOpened && std >= len(tcpLabelNames) {
				continue // response_code and the gRPC status are not labels of a TCP metric
			}
			d := dimension{tag: tag, expr: ei, std: std}
			if j := slices.IndexFunc(ov.dims[w], func(x dimension) bool { return x.tag == tag }); j >= 0 {
				ov.dims[w][j] = d
			} else {
				ov.dims[w] = append(ov.dims[w], d)
			}
		}
	}
	return nil
}

// sortDimensions orders each metric's dimensions, standard tags first, then
// the added ones by name (added lists them: the labels after labelNames).
func (ov *Overrides) sortDimensions() {
	for w := range numMetrics {
		slices.SortFunc(ov.dims[w], func(a, b dimension) int {
			if aa, ba := a.std < 0, b.std < 0; aa != ba {
				if aa {
					return 1
				}
				return -1
			}
			return strings.Compare(a.tag, b.tag)
		})
		ov.added[w] = nil
		for _, d := range ov.dims[w] {
			if d.std < 0 {
				ov.added[w] = append(ov.added[w], d.tag)
			}
		}
	}
}

// validLabel reports whether s is a Prometheus label name.
func validLabel(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (ov *Overrides) add(m *statspb.MetricConfig) error {
	if m.GetMatch() != "" {
		return pbcheck.ErrAt("match", "not supported")
	}
	ws, err := which(m)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if m.GetDrop() {
			ov.drop[w] = true
		}
		for _, tag := range m.GetTagsToRemove() {
			// A tag the metric does not have (a custom one, or response_code
			// of a TCP metric) has nothing to remove, as in Istio's filter.
			if i := slices.Index(labelNames, tag); i >= 0 && !slices.Contains(ov.blank[w], i) {
				ov.blank[w] = append(ov.blank[w], i)
				slices.Sort(ov.blank[w])
			}
		}
	}
	return nil
}

// dropped reports whether metric m is not recorded.
func (ov *Overrides) dropped(m metric) bool { return ov != nil && ov.drop[m] }

// values returns the label values of metric m: all of them, or a copy
// with the dimensions' values (dims, one per expression) in place of the
// standard tags they set and after them for the tags they add, and the
// removed tags' values empty.
func (ov *Overrides) values(m metric, all, dims []string) []string {
	if ov == nil || len(ov.blank[m]) == 0 && len(ov.dims[m]) == 0 {
		return all
	}
	out := slices.Clone(all)
	for _, d := range ov.dims[m] {
		v := Unknown
		if d.expr < len(dims) {
			v = dims[d.expr]
		}
		if d.std < 0 {
			out = append(out, v)
		} else if d.std < len(out) {
			out[d.std] = v
		}
	}
	for _, i := range ov.blank[m] {
		if i < len(out) {
			out[i] = ""
		}
	}
	return out
}

// HasDimensions reports whether ov sets tags by expression: the caller
// then evaluates them for each request (Eval) and records with
// LabelSet.RecordHTTPDims.
func (ov *Overrides) HasDimensions() bool { return ov != nil && len(ov.exprs) > 0 }

// Eval evaluates the dimensions' expressions on r, their values joined by
// a NUL byte ("" without dimensions). A value the expression cannot give
// (an attribute r lacks) is "unknown", as Istio's filter records it.
func (ov *Overrides) Eval(r *accesslog.Record) Dims {
	if !ov.HasDimensions() {
		return ""
	}
	var b strings.Builder
	b.WriteByte(1) // evaluated: Dims("") is "not evaluated"
	for i, c := range ov.exprs {
		if i > 0 {
			b.WriteByte(0)
		}
		v, ok := c.Eval(r)
		if !ok {
			v = Unknown
		}
		b.WriteString(strings.ReplaceAll(v, "\x00", ""))
	}
	return Dims(b.String())
}

// Dims are the values of a request's dimensions (Overrides.Eval).
type Dims string

// split returns the values of n expressions ("unknown" for each when d
// holds none: a caller that did not evaluate them).
func (d Dims) split(n int) []string {
	if n == 0 {
		return nil
	}
	var vs []string
	if len(d) > 0 {
		vs = strings.Split(string(d[1:]), "\x00")
	}
	if len(vs) != n {
		vs = make([]string, n)
		for i := range vs {
			vs[i] = Unknown
		}
	}
	return vs
}

func init() { filters.Register(statsFactory{}) }

// statsFactory builds the HTTP stats filter: it checks the config (see
// NewOverrides) and does nothing per request, the standard metrics being
// recorded by the connection manager with the overrides the config
// decoder takes from the same config (StatsOverrides).
type statsFactory struct{}

func (statsFactory) Names() []string    { return []string{StatsFilterName} }
func (statsFactory) TypeURLs() []string { return []string{StatsTypeURL} }

// StatsFilter is the built filter: no hooks (a filters.NoOp), its
// overrides for the config decoder.
type StatsFilter struct {
	filters.NoOp
	Overrides *Overrides
}

func (statsFactory) New(_ filters.BuildContext, cfg proto.Message) (StatsFilter, error) {
	if cfg == nil {
		return StatsFilter{}, fmt.Errorf("%s: a stats.PluginConfig is required", StatsFilterName)
	}
	ov, err := NewOverrides(cfg)
	if err != nil {
		return StatsFilter{}, err
	}
	return StatsFilter{Overrides: ov}, nil
}

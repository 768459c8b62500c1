package metrics

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	statspb "istio.io/api/envoy/extensions/stats"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
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
	numMetrics
)

type metric uint8

var metricNames = [numMetrics]string{
	"requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes",
	"tcp_connections_opened_total", "tcp_connections_closed_total", "tcp_sent_bytes_total", "tcp_received_bytes_total",
}

// notRecorded are standard metrics of the stats filter the waypoint does not record.
var notRecorded = []string{"request_messages_total", "response_messages_total"}

// Overrides are a stats filter's metric overrides: metrics not recorded
// (drop) and tags removed. A removed tag is recorded with an empty value,
// which Prometheus treats as the label's absence, so that series differing
// only by it are one. Read-only; nil means none.
type Overrides struct {
	drop  [numMetrics]bool
	blank [numMetrics][]int // indexes into labelNames, ascending
}

var statsAllowlist = pbcheck.Allowlist{
	"stats.PluginConfig": pbcheck.F("reporter", "disable_host_header_fallback", "metrics*"), // metrics: each by hand
}

// NewOverrides decodes a stats filter's config (a PluginConfig, or the
// Struct of a TypedStruct). The waypoint records Istio's standard metrics
// as a SERVER_GATEWAY reporter (reporter="waypoint") and never takes a
// destination from the Host header; it implements the overrides that drop
// a metric or remove tags. Custom dimensions and metric definitions (CEL
// expressions), and the other settings, are refused by name: accepting
// them and recording something else would be silent. It returns nil for a
// config that overrides nothing; errors name the field.
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
	for i, m := range pb.GetMetrics() {
		if err := ov.add(m); err != nil {
			return nil, pbcheck.At(pbcheck.Idx("metrics", i), err)
		}
	}
	if ov.empty() {
		return nil, nil
	}
	return ov, nil
}

func (ov *Overrides) empty() bool {
	for m := range numMetrics {
		if ov.drop[m] || len(ov.blank[m]) > 0 {
			return false
		}
	}
	return true
}

func (ov *Overrides) add(m *statspb.MetricConfig) error {
	switch {
	case len(m.GetDimensions()) > 0:
		keys := make([]string, 0, len(m.GetDimensions()))
		for k := range m.GetDimensions() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return pbcheck.ErrAt("dimensions", "tags set by expression (%v) are not supported yet (metric overrides)", keys)
	case m.GetMatch() != "":
		return pbcheck.ErrAt("match", "not supported")
	}
	var which []metric
	switch name := m.GetName(); {
	case name == "":
		for i := range numMetrics {
			which = append(which, i)
		}
	case slices.Contains(notRecorded, name):
		return nil
	default:
		i := slices.Index(metricNames[:], name)
		if i < 0 {
			return pbcheck.ErrAt("name", "unknown metric %q (custom metrics are not supported yet)", name)
		}
		which = []metric{metric(i)}
	}
	for _, w := range which {
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
// with the removed tags' values empty.
func (ov *Overrides) values(m metric, all []string) []string {
	if ov == nil || len(ov.blank[m]) == 0 {
		return all
	}
	out := slices.Clone(all)
	for _, i := range ov.blank[m] {
		if i < len(out) {
			out[i] = ""
		}
	}
	return out
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

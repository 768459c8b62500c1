package admin

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Stat is one counter or gauge under its Envoy name.
type Stat struct {
	Name  string
	Value float64
	Used  bool // a counter that counted, or a gauge that is or was set
}

// Histogram is one histogram under its Envoy name: cumulative quantiles
// estimated from its buckets.
type Histogram struct {
	Name      string
	Count     uint64
	Quantiles []float64 // at histogramQuantiles; NaN when empty
}

// histogramQuantiles are Envoy's supported_quantiles, in percent.
var histogramQuantiles = []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100}

// unlabelled are the Envoy names of the process-wide stats registered
// under their Prometheus names (see xds/adsclient/stats.go).
var unlabelled = map[string]string{
	"envoy_cluster_manager_cds_update_success":   "cluster_manager.cds.update_success",
	"envoy_cluster_manager_cds_update_rejected":  "cluster_manager.cds.update_rejected",
	"envoy_listener_manager_lds_update_success":  "listener_manager.lds.update_success",
	"envoy_listener_manager_lds_update_rejected": "listener_manager.lds.update_rejected",
	"envoy_control_plane_connected_state":        "control_plane.connected_state",
}

// EnvoyName is the name Envoy gives a Prometheus series: the per-cluster
// and per-listener families back in their dotted form
// (cluster.NAME.upstream_rq_total, listener.NAME.downstream_cx_total), the
// process-wide ones as in unlabelled, and the rest (Istio's standard
// metrics, the filters' counters) in the tagged form Envoy's stats sink
// gives Istio's metrics: "label=.=value;.;...;.;name".
func EnvoyName(family string, labels []*dto.LabelPair) string {
	if n, ok := unlabelled[family]; ok && len(labels) == 0 {
		return n
	}
	if len(labels) == 1 {
		l := labels[0]
		switch {
		case l.GetName() == "cluster_name" && strings.HasPrefix(family, "envoy_cluster_"):
			return "cluster." + l.GetValue() + "." + strings.TrimPrefix(family, "envoy_cluster_")
		case l.GetName() == "listener" && strings.HasPrefix(family, "envoy_listener_"):
			stat := strings.TrimPrefix(family, "envoy_listener_")
			if rest, ok := strings.CutPrefix(stat, "ssl_"); ok {
				stat = "ssl." + rest // listener.NAME.ssl.connection_error
			}
			return "listener." + l.GetValue() + "." + stat
		case l.GetName() == "http_conn_manager_prefix" && strings.HasPrefix(family, "envoy_http_"):
			return "http." + l.GetValue() + "." + strings.TrimPrefix(family, "envoy_http_")
		}
	}
	if len(labels) == 0 {
		if rest, ok := strings.CutPrefix(family, "envoy_http2_"); ok {
			return "http2." + rest // the downstream codec's counters
		}
		return family
	}
	var b strings.Builder
	for _, l := range labels {
		b.WriteString(l.GetName())
		b.WriteString("=.=")
		b.WriteString(l.GetValue())
		b.WriteString(";.;")
	}
	b.WriteString(family)
	return b.String()
}

// Convert turns gathered families into Envoy's stats, each list sorted by
// name.
func Convert(families []*dto.MetricFamily) ([]Stat, []Histogram) {
	var stats []Stat
	var hists []Histogram
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := EnvoyName(f.GetName(), m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				stats = append(stats, Stat{Name: name, Value: v, Used: v != 0})
			case dto.MetricType_GAUGE:
				v := m.GetGauge().GetValue()
				stats = append(stats, Stat{Name: name, Value: v, Used: true})
			case dto.MetricType_UNTYPED:
				v := m.GetUntyped().GetValue()
				stats = append(stats, Stat{Name: name, Value: v, Used: true})
			case dto.MetricType_HISTOGRAM:
				hists = append(hists, histogramOf(name, m.GetHistogram()))
			}
		}
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Name < stats[j].Name })
	sort.Slice(hists, func(i, j int) bool { return hists[i].Name < hists[j].Name })
	return stats, hists
}

// histogramOf estimates the quantiles of h by linear interpolation within
// its buckets, as Envoy's histograms estimate them within theirs.
func histogramOf(name string, h *dto.Histogram) Histogram {
	out := Histogram{Name: name, Count: h.GetSampleCount(), Quantiles: make([]float64, len(histogramQuantiles))}
	for i, q := range histogramQuantiles {
		if out.Count == 0 {
			out.Quantiles[i] = math.NaN()
			continue
		}
		rank := q / 100 * float64(out.Count)
		lower, prevCount := 0.0, uint64(0)
		out.Quantiles[i] = math.NaN()
		for _, b := range h.GetBucket() {
			if float64(b.GetCumulativeCount()) >= rank && b.GetCumulativeCount() > 0 {
				in := b.GetCumulativeCount() - prevCount
				frac := 1.0
				if in > 0 {
					frac = (rank - float64(prevCount)) / float64(in)
				}
				out.Quantiles[i] = lower + (b.GetUpperBound()-lower)*max(0, frac)
				break
			}
			lower, prevCount = b.GetUpperBound(), b.GetCumulativeCount()
		}
		if math.IsNaN(out.Quantiles[i]) {
			out.Quantiles[i] = lower // past the last finite bucket
		}
	}
	return out
}

func (src Sources) stats(w http.ResponseWriter, r *http.Request) {
	if src.Stats == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	var re *regexp.Regexp
	if f := q.Get("filter"); f != "" {
		var err error
		if re, err = regexp.Compile(f); err != nil {
			http.Error(w, "Invalid re2 regex: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	families, err := src.Stats.Gather()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	stats, hists := Convert(families)
	usedOnly := q.Has("usedonly")
	keep := func(name string, used bool) bool {
		return (re == nil || re.MatchString(name)) && (!usedOnly || used)
	}
	onlyType := q.Get("type") // All, Counters, Gauges, Histograms, TextReadouts
	fs := stats[:0:0]
	for _, s := range stats {
		if keep(s.Name, s.Used) && onlyType != "Histograms" {
			fs = append(fs, s)
		}
	}
	var fh []Histogram
	for _, h := range hists {
		if keep(h.Name, h.Count > 0) && (onlyType == "" || onlyType == "All" || onlyType == "Histograms") {
			fh = append(fh, h)
		}
	}
	switch q.Get("format") {
	case "json":
		b, err := StatsJSON(fs, fh)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, b)
	case "prometheus":
		http.Redirect(w, r, "/stats/prometheus", http.StatusFound)
	case "", "text":
		writeText(w, StatsText(fs, fh))
	default:
		http.Error(w, "usage: /stats?format=(text|json|prometheus)", http.StatusBadRequest)
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// StatsText renders stats as Envoy's text format: "name: value" per stat,
// then per histogram "name: P0(nan,v) P25(nan,v) ..." (interval, then
// cumulative; the interval is not kept) or "No recorded values".
func StatsText(stats []Stat, hists []Histogram) string {
	var b strings.Builder
	for _, s := range stats {
		fmt.Fprintf(&b, "%s: %s\n", s.Name, num(s.Value))
	}
	for _, h := range hists {
		if h.Count == 0 {
			fmt.Fprintf(&b, "%s: No recorded values\n", h.Name)
			continue
		}
		parts := make([]string, len(histogramQuantiles))
		for i, q := range histogramQuantiles {
			parts[i] = fmt.Sprintf("P%s(nan,%s)", num(q), num(h.Quantiles[i]))
		}
		fmt.Fprintf(&b, "%s: %s\n", h.Name, strings.Join(parts, " "))
	}
	return b.String()
}

// StatsJSON renders stats as Envoy's /stats?format=json: {"stats": [{"name",
// "value"}..., {"histograms": {"supported_quantiles", "computed_quantiles":
// [{"name", "values": [{"interval", "cumulative"}]}]}}]}.
func StatsJSON(stats []Stat, hists []Histogram) ([]byte, error) {
	type value struct {
		Interval   *float64 `json:"interval"`
		Cumulative *float64 `json:"cumulative"`
	}
	type computed struct {
		Name   string  `json:"name"`
		Values []value `json:"values"`
	}
	type histograms struct {
		Supported []float64  `json:"supported_quantiles"`
		Computed  []computed `json:"computed_quantiles"`
	}
	out := make([]any, 0, len(stats)+1)
	for _, s := range stats {
		out = append(out, struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		}{s.Name, s.Value})
	}
	if len(hists) > 0 {
		hs := histograms{Supported: histogramQuantiles}
		for _, h := range hists {
			c := computed{Name: h.Name, Values: make([]value, len(h.Quantiles))}
			for i, v := range h.Quantiles {
				if !math.IsNaN(v) {
					v := v
					c.Values[i].Cumulative = &v
				}
			}
			hs.Computed = append(hs.Computed, c)
		}
		out = append(out, map[string]any{"histograms": hs})
	}
	return json.MarshalIndent(map[string]any{"stats": out}, "", "  ")
}

package filters

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A Scope gives the family registered for a name and labels, however many
// filters ask for it: the second ask returns the first family without
// making another; another Scope on the same registry (the next build)
// finds it registered. Another help or label set is refused, as the
// registry refuses it.
func TestScopeFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewScope(reg)
	opts := prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests."}
	a, err := s.CounterVec(opts, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CounterVec(opts, "cluster")
	if err != nil || a != b {
		t.Fatalf("second ask: %p, %v; want the first family %p", b, err, a)
	}
	if n := testing.AllocsPerRun(10, func() { s.CounterVec(opts, "cluster") }); n > 2 {
		t.Errorf("asking again: %v allocations (a family made and thrown away?)", n)
	}
	c, err := NewScope(reg).CounterVec(opts, "cluster")
	if err != nil || c != a {
		t.Fatalf("a new Scope on the registry: %p, %v; want the registered family %p", c, err, a)
	}
	a.WithLabelValues("x").Inc()
	b.WithLabelValues("x").Inc()
	var m dto.Metric
	if err := c.WithLabelValues("x").Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("count %v (%v), want 2 (one family)", m.GetCounter().GetValue(), err)
	}
	if _, err := s.CounterVec(prometheus.CounterOpts{Name: opts.Name, Help: "Other."}, "cluster"); err == nil {
		t.Error("the name with another help: no error")
	}
	if _, err := s.CounterVec(opts, "cluster", "code"); err == nil || !strings.Contains(err.Error(), "label") {
		t.Errorf("the name with other labels: %v", err)
	}
	g1, err1 := s.GaugeVec(prometheus.GaugeOpts{Name: "test_active", Help: "Active."})
	g2, err2 := s.GaugeVec(prometheus.GaugeOpts{Name: "test_active", Help: "Active."})
	if err1 != nil || err2 != nil || g1 != g2 {
		t.Errorf("gauges: %p %v, %p %v", g1, err1, g2, err2)
	}
}

package greeting

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// backend is a Terminal standing in for the router: it answers 200 and
// records what reached it.
type backend struct{ got *l7.Request }

func (b *backend) Serve(s *filters.Stream) error {
	b.got = s.Request
	s.Response = &l7.Response{Status: 200}
	return nil
}

func run(t *testing.T, caller string) (*filters.Stream, *backend) {
	t.Helper()
	factory, err := filters.Lookup(Name, TypeURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"header": "x-caller", "deny": []any{"intruder"}})
	f, err := factory.New(filters.BuildContext{Name: Name, Stats: filters.NewScope(testStats)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{}
	chain := filters.NewChain(b, f)
	down := &filters.Downstream{Peer: spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: caller}}
	s := filters.NewStream(context.Background(), &l7.Request{Method: "GET", Path: []byte("/")}, down, nil)
	chain.Run(s)
	return s, b
}

func TestGreetsAllowedCallers(t *testing.T) {
	s, b := run(t, "productpage")
	if b.got == nil || b.got.Header.GetString("x-caller") != "productpage" {
		t.Fatalf("backend did not get the caller header")
	}
	if s.Response.Header.GetString("x-greeted") != "true" {
		t.Fatalf("response not marked")
	}
}

// TestUnknownFieldRefused: a config field the filter does not know (a typo)
// is refused, naming it, rather than ignored.
func TestUnknownFieldRefused(t *testing.T) {
	factory, err := filters.Lookup(Name, TypeURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"header": "x-caller", "dney": []any{"intruder"}})
	_, err = factory.New(filters.BuildContext{Name: Name}, cfg)
	if err == nil || !strings.Contains(err.Error(), `example.greeting: unknown field "dney" (known: deny, header)`) {
		t.Fatalf("err = %v, want the unknown field named", err)
	}
	cfg, _ = structpb.NewStruct(map[string]any{"deny": "intruder"})
	if _, err = factory.New(filters.BuildContext{Name: Name}, cfg); err == nil || !strings.Contains(err.Error(), "deny: want []string, got string") {
		t.Fatalf("err = %v, want the mistyped field named", err)
	}
}

// testStats is the registry the tests' filters count on.
var testStats = prometheus.NewRegistry()

func TestTurnsAwayDeniedCallers(t *testing.T) {
	before := deniedCount(t)
	s, b := run(t, "intruder")
	if b.got != nil {
		t.Fatal("a denied request reached the backend")
	}
	if s.Local == nil || s.Local.Status != 403 || !strings.Contains(s.Local.Body, "intruder") {
		t.Fatalf("local reply %+v, want 403 naming the caller", s.Local)
	}
	if got := deniedCount(t); got != before+1 {
		t.Fatalf("greeting_denied_total %v, want %v", got, before+1)
	}
}

// deniedCount reads greeting_denied_total from testStats.
func deniedCount(t *testing.T) float64 {
	t.Helper()
	mfs, err := testStats.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "greeting_denied_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestDocsShowThisFile keeps docs/filters.md honest: the example there is
// this package's code, verbatim.
func TestDocsShowThisFile(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/filters.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("greeting.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+string(src)+"```") {
		t.Fatal("docs/filters.md does not show filters/example/greeting/greeting.go as it is; update the doc")
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package xds

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ctxFactory, "test.buildctx", records the context of every filter and
// per-route config it builds, and counts its builds on the context's stats
// scope.
type ctxFactory struct{}

var builtContexts struct {
	sync.Mutex
	all []filters.BuildContext
}

func (ctxFactory) Names() []string    { return []string{"test.buildctx"} }
func (ctxFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.BuildCtx"} }

func (ctxFactory) New(ctx filters.BuildContext, _ proto.Message) (ctxFilter, error) {
	builtContexts.Lock()
	builtContexts.all = append(builtContexts.all, ctx)
	builtContexts.Unlock()
	c, err := ctx.Stats.Counter(prometheus.CounterOpts{Name: "test_buildctx_built_total", Help: "Filters built."})
	if err != nil {
		return ctxFilter{}, err
	}
	c.Inc()
	ctx.Logger.Info("built")
	return ctxFilter{}, nil
}

func (ctxFactory) ParsePerRoute(ctx filters.BuildContext, _ proto.Message) (any, error) {
	builtContexts.Lock()
	builtContexts.all = append(builtContexts.all, ctx)
	builtContexts.Unlock()
	return "per-route", nil
}

type ctxFilter struct{}

func (ctxFilter) OnRequest(*filters.Stream) filters.Status { return filters.Continue }

func init() { filters.Register(ctxFactory{}) }

type stubUpstream struct{}

func (stubUpstream) RoundTrip(context.Context, *filters.UpstreamRequest) (*l7.Response, error) {
	return &l7.Response{Status: 204}, nil
}

// TestBuildOptionsReachFilters: the registry, logger and cluster manager of
// BuildOptions reach each filter's New and ParsePerRoute, named; the zero
// options give a discarding logger, no registry and no cluster manager.
func TestBuildOptionsReachFilters(t *testing.T) {
	const ctxFilterYAML = `{name: test.buildctx, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.BuildCtx}}`
	routes := `{name: r, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend},
		typed_per_filter_config: {test.buildctx: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.BuildCtx}}}]}]}`
	yaml := doc("", []string{listenerOn("l", 18000, "", hcmChain(ctxFilterYAML+", "+routerFilter, routes, ""))}, []string{backendCluster})
	take := func() []filters.BuildContext {
		builtContexts.Lock()
		defer builtContexts.Unlock()
		all := builtContexts.all
		builtContexts.all = nil
		return all
	}
	take()

	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	opts := BuildOptions{Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Upstream: stubUpstream{}}
	if _, err := opts.ParseBootstrap([]byte(yaml), "test.yaml"); err != nil {
		t.Fatal(err)
	}
	got := take()
	if len(got) != 2 {
		t.Fatalf("%d contexts recorded, want 2 (New and ParsePerRoute)", len(got))
	}
	for _, ctx := range got {
		if ctx.Name != "test.buildctx" || ctx.Logger == nil || ctx.Upstream != (stubUpstream{}) {
			t.Errorf("context %+v: want the filter's name, a logger and the options' upstream", ctx)
		}
	}
	if !strings.Contains(logs.String(), "filter=test.buildctx") {
		t.Errorf("the filter's log line does not name it: %q", logs.String())
	}
	if n := gatherCounter(t, reg, "test_buildctx_built_total"); n != 1 {
		t.Errorf("test_buildctx_built_total %v on the options' registry, want 1", n)
	}

	// A second build (a reload) counts on the same series.
	if _, err := opts.ParseBootstrap([]byte(yaml), "test.yaml"); err != nil {
		t.Fatal(err)
	}
	if n := gatherCounter(t, reg, "test_buildctx_built_total"); n != 2 {
		t.Errorf("after a rebuild, test_buildctx_built_total %v, want 2", n)
	}
	take()

	if _, err := ParseBootstrap([]byte(yaml), "test.yaml"); err != nil {
		t.Fatal(err)
	}
	for _, ctx := range take() {
		if ctx.Logger == nil || ctx.Upstream != nil {
			t.Errorf("zero options: context %+v, want a (discarding) logger and no upstream", ctx)
		}
	}
	if n := gatherCounter(t, reg, "test_buildctx_built_total"); n != 2 {
		t.Errorf("a build with zero options counted on the registry: %v", n)
	}
}

func gatherCounter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

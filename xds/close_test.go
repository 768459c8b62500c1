package xds

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
)

// closerFactory, "test.closer", builds filters (and per-route configs)
// that own something: they record their Close, by the id of their config,
// in closed.
type closerFactory struct{}

var closed struct {
	sync.Mutex
	ids []string
}

func (closerFactory) Names() []string    { return []string{"test.closer"} }
func (closerFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.Closer"} }

func (closerFactory) New(_ filters.BuildContext, cfg proto.Message) (*closerFilter, error) {
	return &closerFilter{id: cfg.(*structpb.Struct).GetFields()["id"].GetStringValue()}, nil
}

func (closerFactory) ParsePerRoute(_ filters.BuildContext, cfg proto.Message) (any, error) {
	return &closerFilter{id: cfg.(*structpb.Struct).GetFields()["id"].GetStringValue()}, nil
}

type closerFilter struct{ id string }

func (*closerFilter) OnRequest(*filters.Stream) filters.Status { return filters.Continue }

func (f *closerFilter) Close() error {
	closed.Lock()
	defer closed.Unlock()
	closed.ids = append(closed.ids, f.id)
	if strings.HasPrefix(f.id, "fail") {
		return errors.New(f.id + " failed to close")
	}
	return nil
}

func init() { filters.Register(closerFactory{}) }

func takeClosed() []string {
	closed.Lock()
	defer closed.Unlock()
	ids := closed.ids
	closed.ids = nil
	return ids
}

// closerListener is a listener on port whose HCM has a test.closer filter
// with id, and a route with a test.closer per-route config with id+"-route".
func closerListener(name string, port int, id, cluster string) string {
	typed := func(id string) string {
		return fmt.Sprintf(`{"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.Closer, value: {id: %q}}`, id)
	}
	routes := fmt.Sprintf(`{name: r, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: %s},
		typed_per_filter_config: {test.closer: %s}}]}]}`, cluster, typed(id+"-route"))
	return listenerOn(name, port, "", hcmChain(`{name: test.closer, typed_config: `+typed(id)+`}, `+routerFilter, routes, ""))
}

// TestSnapshotClosesItsFilters: a snapshot's Close closes the filters and
// per-route configs it built that are io.Closers, last built first, once;
// a failed build closes those it had built.
func TestSnapshotClosesItsFilters(t *testing.T) {
	takeClosed()
	yaml := doc("", []string{closerListener("a", 18001, "a", "backend"), closerListener("b", 18002, "fail-b", "backend")}, []string{backendCluster})
	b := mustParse(t, yaml)
	if got := takeClosed(); len(got) != 0 {
		t.Fatalf("closed while in use: %v", got)
	}
	err := b.Snapshot.Close()
	if err == nil || !strings.Contains(err.Error(), "fail-b failed to close") {
		t.Errorf("Close = %v, want the failing filter's error", err)
	}
	// Routes are compiled before the chain: each listener's per-route
	// config, then its filter.
	if diff := cmp.Diff([]string{"fail-b", "fail-b-route", "a", "a-route"}, takeClosed()); diff != "" {
		t.Errorf("closed (-want +got):\n%s", diff)
	}
	if err2 := b.Snapshot.Close(); err2 != err || len(takeClosed()) != 0 {
		t.Errorf("a second Close closed again (or changed its answer: %v)", err2)
	}
	if (*Snapshot)(nil).Close() != nil {
		t.Error("a nil snapshot has nothing to close")
	}

	// The second listener refers to a cluster that does not exist: what the
	// first one built is closed with the failed build.
	bad := doc("", []string{closerListener("a", 18001, "a", "backend"), closerListener("b", 18002, "b", "nowhere")}, []string{backendCluster})
	if _, err := ParseBootstrap([]byte(bad), "test.yaml"); err == nil {
		t.Fatal("a route to an unknown cluster was accepted")
	}
	if diff := cmp.Diff([]string{"a", "a-route"}, takeClosed()); diff != "" {
		t.Errorf("closed after a failed build (-want +got):\n%s", diff)
	}
}

package route

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// parseConfig decodes a RouteConfiguration written in YAML (protojson
// field names).
func parseConfig(tb testing.TB, y string) *routev3.RouteConfiguration {
	tb.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		tb.Fatalf("yaml: %v", err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(j, rc); err != nil {
		tb.Fatalf("protojson: %v\n%s", err, j)
	}
	return rc
}

// testPerFilter is the PerFilterConfig of the tests: the fault filter's
// config decodes to its HTTPFault (the fault filter is not this package's),
// test.filter's to a string of its bytes.
func testPerFilter(name string, a *anypb.Any) (any, error) {
	switch name {
	case "envoy.filters.http.fault":
		m := &faultv3.HTTPFault{}
		if err := a.UnmarshalTo(m); err != nil {
			return nil, err
		}
		return m, nil
	case "test.filter":
		return "cfg:" + string(a.GetValue()), nil
	}
	return nil, fmt.Errorf("unknown filter %q", name)
}

// mustCompile compiles a YAML route configuration with the test hooks.
func mustCompile(tb testing.TB, y string) *Table {
	tb.Helper()
	t, err := Compile(parseConfig(tb, y), CompileOptions{PerFilterConfig: testPerFilter})
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return t
}

// newReq builds a request; headers are "name: value" strings.
func newReq(method, authority, path string, headers ...string) *l7.Request {
	r := &l7.Request{Method: method, Scheme: "http", Authority: []byte(authority), Path: []byte(path), Proto: l7.HTTP11}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		r.Header.Add(strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value))
	}
	return r
}

var testDown = &filters.Downstream{
	RemoteAddr: netip.MustParseAddrPort("127.0.22.7:41000"),
	LocalAddr:  netip.MustParseAddrPort("127.0.22.1:15008"),
}

// headerList renders a header as "name=value" strings in order.
func headerList(h *l7.Header) []string {
	var out []string
	for _, f := range h.Fields() {
		out = append(out, string(f.Name)+"="+string(f.Value))
	}
	return out
}

// filtersStream builds filters.Stream values for Resolve.
type filtersStream struct{}

func (filtersStream) with(req *l7.Request) *filters.Stream {
	return &filters.Stream{Request: req}
}

type previousHosts = previoushostsv3.PreviousHostsPredicate

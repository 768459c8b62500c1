package rbac

import (
	"os"
	"testing"

	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// metadata is a MetadataSource of one namespace.
type metadata map[string]*structpb.Struct

func (m metadata) DynamicMetadata(ns string) *structpb.Struct { return m[ns] }

func jwtMetadata(t *testing.T, payload map[string]any) metadata {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"payload": payload})
	if err != nil {
		t.Fatal(err)
	}
	return metadata{"envoy.filters.http.jwt_authn": st}
}

// Each value matcher, as a principal on the jwt_authn namespace's
// payload, and the path through the structs.
func TestMetadataRules(t *testing.T) {
	md := jwtMetadata(t, map[string]any{
		"iss": "testing@secure.istio.io", "groups": []any{"group1", "group2"}, "n": 3.0,
		"admin": true, "nested": map[string]any{"k": "v"}, "scope": "a b",
	})
	down := &filters.Downstream{}
	m := func(path, value string, invert bool) string {
		inv := ""
		if invert {
			inv = `,"invert":true`
		}
		return `{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":` + path + `,"value":` + value + inv + `}}`
	}
	cases := []struct {
		name, princ string
		md          MetadataSource
		want        bool
	}{
		{"string exact", m(`[{"key":"payload"},{"key":"iss"}]`, `{"stringMatch":{"exact":"testing@secure.istio.io"}}`, false), md, true},
		{"string miss", m(`[{"key":"payload"},{"key":"iss"}]`, `{"stringMatch":{"exact":"other"}}`, false), md, false},
		{"string invert", m(`[{"key":"payload"},{"key":"iss"}]`, `{"stringMatch":{"exact":"other"}}`, true), md, true},
		{"list one_of", m(`[{"key":"payload"},{"key":"groups"}]`, `{"listMatch":{"oneOf":{"stringMatch":{"exact":"group2"}}}}`, false), md, true},
		{"list one_of miss", m(`[{"key":"payload"},{"key":"groups"}]`, `{"listMatch":{"oneOf":{"stringMatch":{"exact":"group3"}}}}`, false), md, false},
		{"list on a string", m(`[{"key":"payload"},{"key":"iss"}]`, `{"listMatch":{"oneOf":{"stringMatch":{"prefix":""}}}}`, false), md, false},
		{"or list or string", m(`[{"key":"payload"},{"key":"iss"}]`, `{"orMatch":{"valueMatchers":[{"listMatch":{"oneOf":{"stringMatch":{"exact":"x"}}}},{"stringMatch":{"suffix":"istio.io"}}]}}`, false), md, true},
		{"double exact", m(`[{"key":"payload"},{"key":"n"}]`, `{"doubleMatch":{"exact":3}}`, false), md, true},
		{"double range", m(`[{"key":"payload"},{"key":"n"}]`, `{"doubleMatch":{"range":{"start":1,"end":3}}}`, false), md, false},
		{"bool", m(`[{"key":"payload"},{"key":"admin"}]`, `{"boolMatch":true}`, false), md, true},
		{"present", m(`[{"key":"payload"},{"key":"nested"},{"key":"k"}]`, `{"presentMatch":true}`, false), md, true},
		{"absent key", m(`[{"key":"payload"},{"key":"nope"}]`, `{"presentMatch":true}`, false), md, false},
		{"absent null_match", m(`[{"key":"payload"},{"key":"nope"}]`, `{"nullMatch":{}}`, false), md, true},
		{"path through a string", m(`[{"key":"payload"},{"key":"iss"},{"key":"x"}]`, `{"presentMatch":true}`, false), md, false},
		{"no metadata", m(`[{"key":"payload"},{"key":"iss"}]`, `{"presentMatch":true}`, false), metadata{}, false},
		{"no source (network)", m(`[{"key":"payload"},{"key":"iss"}]`, `{"presentMatch":true}`, false), nil, false},
		{"no source inverted", m(`[{"key":"payload"},{"key":"iss"}]`, `{"presentMatch":true}`, true), nil, true},
	}
	for _, c := range cases {
		e, err := Compile(rbacFrom(t, `{"action":"ALLOW","policies":{"p":{"permissions":[{"any":true}],"principals":[`+c.princ+`]}}}`))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r := e.Evaluate(&Input{Downstream: down, Metadata: c.md}); r.Matched != c.want {
			t.Errorf("%s: matched %v, want %v", c.name, r.Matched, c.want)
		}
		// As a permission too.
		e, err = Compile(rbacFrom(t, `{"action":"ALLOW","policies":{"p":{"permissions":[`+c.princ+`],"principals":[{"any":true}]}}}`))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r := e.Evaluate(&Input{Downstream: down, Metadata: c.md}); r.Matched != c.want {
			t.Errorf("%s (permission): matched %v, want %v", c.name, r.Matched, c.want)
		}
	}
}

// istiod's RBAC for an AuthorizationPolicy on request.auth.claims[groups]
// (testdata/istiod-jwt.json, from a live istiod): the filter reads the
// payload jwt_authn left on the stream.
func TestIstiodJWTClaims(t *testing.T) {
	raw, err := os.ReadFile("testdata/istiod-jwt.json")
	if err != nil {
		t.Fatal(err)
	}
	var pb httprbacv3.RBAC
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	f, err := (factory{}).New(testContext(), &pb)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		payload map[string]any // nil: no token
		want    bool
	}{
		{"groups list", map[string]any{"groups": []any{"group2", "group1"}}, true},
		{"groups string", map[string]any{"groups": "group1"}, true},
		{"other group", map[string]any{"groups": []any{"group2"}}, false},
		{"no claim", map[string]any{"sub": "x"}, false},
		{"no token", nil, false},
	} {
		s := filters.NewStream(t.Context(), &l7.Request{Method: "GET", Path: []byte("/")}, &filters.Downstream{}, nil)
		if c.payload != nil {
			st, _ := structpb.NewStruct(map[string]any{"payload": c.payload})
			s.SetDynamicMetadata("envoy.filters.http.jwt_authn", st)
		}
		got := f.OnRequest(s) == filters.Continue
		if got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.name, got, c.want)
		}
	}
}

package filters

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type limits struct {
	Rate  int     `json:"rate"`
	Burst *int    `json:"burst,omitempty"`
	Ratio float64 `json:"ratio"`
}

type base struct {
	Name string `json:"name"`
}

type sampleConfig struct {
	base                         // promoted: name
	Header  string               `json:"header"`
	Deny    []string             `json:"deny"`
	Limits  limits               `json:"limits"`
	Routes  []limits             `json:"routes"`
	ByHost  map[string]limits    `json:"by_host"`
	Timeout textDuration         `json:"timeout"`
	Ignored string               `json:"-"`
	Untyped map[string]any       `json:"untyped"`
	Extra   *map[string][]string `json:"extra"`
	Hidden  string               // no tag: its Go name
}

// textDuration decodes itself ("1s").
type textDuration time.Duration

func (d *textDuration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = textDuration(v)
	return err
}

func TestDecodeTypedStruct(t *testing.T) {
	burst := 5
	cases := []struct {
		name string
		cfg  map[string]any // nil: no config
		msg  proto.Message  // instead of cfg
		want sampleConfig
		err  string
	}{
		{name: "no config keeps the defaults", want: sampleConfig{Header: "x-default"}},
		{name: "every kind of field", cfg: map[string]any{
			"name": "n", "header": "x-caller", "deny": []any{"a", "b"},
			"limits": map[string]any{"rate": 3, "burst": 5, "ratio": 0.5},
			"routes": []any{map[string]any{"rate": 1}}, "by_host": map[string]any{"h": map[string]any{"rate": 2}},
			"timeout": "2s", "untyped": map[string]any{"anything": []any{1, "x"}}, "extra": map[string]any{"k": []any{"v"}},
			"Hidden": "h",
		}, want: sampleConfig{base: base{Name: "n"}, Header: "x-caller", Deny: []string{"a", "b"},
			Limits: limits{Rate: 3, Burst: &burst, Ratio: 0.5}, Routes: []limits{{Rate: 1}},
			ByHost: map[string]limits{"h": {Rate: 2}}, Timeout: textDuration(2 * time.Second),
			Untyped: map[string]any{"anything": []any{1.0, "x"}}, Extra: &map[string][]string{"k": {"v"}}, Hidden: "h"}},
		{name: "unknown field", cfg: map[string]any{"header": "x", "dney": []any{"a"}},
			err: `unknown field "dney" (known: Hidden, by_host, deny, extra, header, limits, name, routes, timeout, untyped)`},
		{name: "names are matched exactly", cfg: map[string]any{"Header": "x"}, err: `unknown field "Header"`},
		{name: "a field tagged -", cfg: map[string]any{"Ignored": "x"}, err: `unknown field "Ignored"`},
		{name: "unknown nested field", cfg: map[string]any{"limits": map[string]any{"rate": 1, "burts": 2}},
			err: `unknown field "limits.burts" (known: burst, rate, ratio)`},
		{name: "unknown field in a list", cfg: map[string]any{"routes": []any{map[string]any{}, map[string]any{"rte": 1}}},
			err: `unknown field "routes[1].rte"`},
		{name: "unknown field in a map", cfg: map[string]any{"by_host": map[string]any{"h": map[string]any{"rat": 1}}},
			err: `unknown field "by_host.h.rat"`},
		{name: "wrong type", cfg: map[string]any{"deny": "a"}, err: "deny: want []string, got string"},
		{name: "wrong nested type", cfg: map[string]any{"limits": map[string]any{"rate": "fast"}}, err: "limits.rate: want int, got string"},
		{name: "a fraction for an int", cfg: map[string]any{"limits": map[string]any{"rate": 1.5}}, err: "limits.rate: want int"},
		{name: "a field's own decoder", cfg: map[string]any{"timeout": "soon"}, err: `invalid duration "soon"`},
		{name: "not a TypedStruct's value", msg: wrapperspb.String("x"), err: "config is *wrapperspb.StringValue, want the value of a TypedStruct"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := c.msg
			if c.cfg != nil {
				st, err := structpb.NewStruct(c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				msg = st
			}
			got := sampleConfig{Header: "x-default"}
			err := DecodeTypedStruct(msg, &got)
			switch {
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err == "":
				if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(sampleConfig{})); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
			case err == nil || !strings.Contains(err.Error(), c.err):
				t.Errorf("err = %v, want it to contain %q", err, c.err)
			}
		})
	}
}

func TestDecodeTypedStructWantsAPointer(t *testing.T) {
	st, _ := structpb.NewStruct(map[string]any{"header": "x"})
	var c sampleConfig
	if err := DecodeTypedStruct(st, c); err == nil || !strings.Contains(err.Error(), "want a non-nil pointer") {
		t.Fatalf("a struct value: %v", err)
	}
}

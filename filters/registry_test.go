package filters

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// testFactory builds a zero F under one name (none when name is "").
type testFactory[F any] struct{ name string }

func (t testFactory[F]) Names() []string {
	if t.name == "" {
		return nil
	}
	return []string{t.name}
}
func (testFactory[F]) TypeURLs() []string                         { return nil }
func (testFactory[F]) New(BuildContext, proto.Message) (F, error) { var f F; return f, nil }

// Filter types, right and wrong.
type (
	onRequest   struct{}
	onResponse  struct{}
	terminalF   struct{}
	bothHooks   struct{}
	dubboRouter struct{}
	noOpFilter  struct{ NoOp }
	noMethods   struct{}
	misspelled  struct{}
	halfRight   struct{}
	wrongSig    struct{}
	wrongCase   struct{}
	wrongServe  struct{}
	helperOnly  struct{}
)

func (onRequest) OnRequest(*Stream) Status   { return Continue }
func (onResponse) OnResponse(*Stream) Status { return Continue }
func (terminalF) Serve(*Stream) error        { return nil }
func (bothHooks) OnRequest(*Stream) Status   { return Continue }
func (bothHooks) OnResponse(*Stream) Status  { return Continue }
func (dubboRouter) Serve(*Stream) error      { return nil }
func (dubboRouter) DubboOnly()               {}
func (misspelled) OnReqest(*Stream) Status   { return Continue }
func (halfRight) OnResponse(*Stream) Status  { return Continue }
func (halfRight) OnRequst(*Stream) Status    { return Continue }
func (wrongSig) OnRequest(*Stream)           {}
func (wrongCase) Onrequest(*Stream) Status   { return Continue }
func (wrongServe) Serve(*Stream)             {}
func (helperOnly) Describe() string          { return "" }

// TestRegisterChecksFilterType: Register refuses, naming the filter, a
// factory whose filter type has no filter method, or a near miss of one
// (which the chain would skip silently), and takes every kind of filter.
func TestRegisterChecksFilterType(t *testing.T) {
	cases := []struct {
		name     string
		register func(name string)
		want     []string // in the panic message; nil: accepted
	}{
		{"request filter", func(n string) { Register(testFactory[onRequest]{n}) }, nil},
		{"response filter", func(n string) { Register(testFactory[*onResponse]{n}) }, nil},
		{"terminal", func(n string) { Register(testFactory[terminalF]{n}) }, nil},
		{"both hooks", func(n string) { Register(testFactory[bothHooks]{n}) }, nil},
		{"Dubbo router", func(n string) { Register(testFactory[dubboRouter]{n}) }, nil},
		{"declared no-op", func(n string) { Register(testFactory[noOpFilter]{n}) }, nil},
		{"NoOp itself", func(n string) { Register(testFactory[NoOp]{n}) }, nil},
		{"an interface with a hook", func(n string) { Register(testFactory[RequestFilter]{n}) }, nil},
		{"no filter method", func(n string) { Register(testFactory[noMethods]{n}) },
			[]string{"no filter method", "filters.noMethods", "embed filters.NoOp"}},
		{"only other methods", func(n string) { Register(testFactory[*helperOnly]{n}) },
			[]string{"*filters.helperOnly has no filter method"}},
		{"New returns Filter", func(n string) { Register(testFactory[Filter]{n}) },
			[]string{"no filter method", "Return the filter's own type from New"}},
		{"misspelled OnRequest", func(n string) { Register(testFactory[misspelled]{n}) },
			[]string{"has OnReqest: a misspelled OnRequest?"}},
		{"misspelled OnRequest beside a right OnResponse", func(n string) { Register(testFactory[halfRight]{n}) },
			[]string{"has OnRequst: a misspelled OnRequest?"}},
		{"OnRequest without its result", func(n string) { Register(testFactory[wrongSig]{n}) },
			[]string{"has OnRequest, but not as filters.RequestFilter's (OnRequest(*filters.Stream) filters.Status)"}},
		{"OnRequest in the wrong case", func(n string) { Register(testFactory[wrongCase]{n}) },
			[]string{"has Onrequest: a misspelled OnRequest?"}},
		{"Serve without its error", func(n string) { Register(testFactory[wrongServe]{n}) },
			[]string{"has Serve, but not as filters.Terminal's"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("test.registry.%d", i)
			got := refusal(func() { c.register(name) })
			switch {
			case c.want == nil && got != "":
				t.Fatalf("refused: %s", got)
			case c.want == nil:
				if _, err := Lookup(name, ""); err != nil {
					t.Fatalf("accepted but not registered: %v", err)
				}
			case got == "":
				t.Fatal("accepted")
			default:
				for _, w := range append([]string{`filter "` + name + `"`}, c.want...) {
					if !strings.Contains(got, w) {
						t.Errorf("refusal %q does not say %q", got, w)
					}
				}
				if _, err := Lookup(name, ""); err == nil {
					t.Error("refused but registered")
				}
			}
		})
	}
}

func TestRegisterRefusesDuplicatesAndNamelessFactories(t *testing.T) {
	Register(testFactory[onRequest]{"test.registry.dup"})
	if got := refusal(func() { Register(testFactory[bothHooks]{"test.registry.dup"}) }); !strings.Contains(got, "registered twice: test.registry.dup") {
		t.Errorf("a name registered twice: %q", got)
	}
	if got := refusal(func() { Register(testFactory[onRequest]{}) }); !strings.Contains(got, "no name and no type URL") {
		t.Errorf("a factory without name or type URL: %q", got)
	}
}

// nilFactory builds a nil filter without an error.
type nilFactory struct{}

func (nilFactory) Names() []string                                      { return []string{"test.registry.nil"} }
func (nilFactory) TypeURLs() []string                                   { return nil }
func (nilFactory) New(BuildContext, proto.Message) (*onResponse, error) { return nil, nil }

func TestNilFilterRefusedAtBuild(t *testing.T) {
	Register(nilFactory{})
	r, err := Lookup("test.registry.nil", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.New(BuildContext{Name: "test.registry.nil"}, nil); err == nil || !strings.Contains(err.Error(), `"test.registry.nil" built no filter`) {
		t.Fatalf("a nil filter: %v", err)
	}
}

// refusal runs f and returns what it panicked with, "" if it did not.
func refusal(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

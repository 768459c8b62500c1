package filters

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder logs the calls it sees into a shared trace; it stops the chain
// when told to.
type recorder struct {
	name  string
	trace *[]string
	stop  bool
}

func (r *recorder) OnRequest(s *Stream) Status {
	*r.trace = append(*r.trace, r.name+".req")
	if r.stop {
		return s.SendLocalReply(403, "no", 0)
	}
	return Continue
}

func (r *recorder) OnResponse(s *Stream) Status {
	*r.trace = append(*r.trace, r.name+".resp")
	return Continue
}

type requestOnly struct{ trace *[]string }

func (r requestOnly) OnRequest(s *Stream) Status {
	*r.trace = append(*r.trace, "reqonly.req")
	return Continue
}

type terminal struct {
	trace *[]string
	err   error
}

func (t terminal) Serve(s *Stream) error {
	*t.trace = append(*t.trace, "router")
	if t.err != nil {
		return t.err
	}
	s.Response = &l7.Response{Status: 200}
	return nil
}

func TestChainOrder(t *testing.T) {
	cases := []struct {
		name      string
		stopAt    string
		err       error
		want      []string
		wantLocal int
		wantFlags string
	}{
		{"all continue", "", nil, []string{"a.req", "reqonly.req", "b.req", "router", "b.resp", "a.resp"}, 0, ""},
		{"local reply stops the request side, responses still run", "b", nil, []string{"a.req", "reqonly.req", "b.req", "b.resp", "a.resp"}, 403, ""},
		{"terminal error becomes a local reply", "", status.New(status.NoHealthyUpstream, errors.New("empty")),
			[]string{"a.req", "reqonly.req", "b.req", "router", "b.resp", "a.resp"}, 503, "UH"},
		{"no route", "", status.New(status.NoRoute, nil), []string{"a.req", "reqonly.req", "b.req", "router", "b.resp", "a.resp"}, 404, "NR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var trace []string
			a := &recorder{name: "a", trace: &trace}
			b := &recorder{name: "b", trace: &trace, stop: c.stopAt == "b"}
			chain := NewChain(terminal{trace: &trace, err: c.err}, a, requestOnly{&trace}, b)
			s := NewStream(context.Background(), &l7.Request{}, &Downstream{}, nil)
			chain.Run(s)
			if diff := cmp.Diff(c.want, trace); diff != "" {
				t.Errorf("call order (-want +got):\n%s", diff)
			}
			switch {
			case c.wantLocal == 0 && (s.Local != nil || s.Response == nil || s.Response.Status != 200):
				t.Errorf("want the upstream response, got local %+v", s.Local)
			case c.wantLocal != 0 && (s.Local == nil || s.Local.Status != c.wantLocal || s.Response != nil):
				t.Errorf("want local reply %d, got %+v", c.wantLocal, s.Local)
			}
			if s.ResponseFlags.String() != c.wantFlags {
				t.Errorf("flags %q, want %q", s.ResponseFlags, c.wantFlags)
			}
		})
	}
}

type countingResolver struct{ n *int }

type namedRoute string

func (r namedRoute) Name() string            { return string(r) }
func (r namedRoute) FilterConfig(string) any { return nil }

func (c countingResolver) Resolve(s *Stream) Route {
	*c.n++
	return namedRoute(string(s.Request.Path))
}

func TestRouteIsCachedUntilCleared(t *testing.T) {
	n := 0
	s := NewStream(context.Background(), &l7.Request{Path: []byte("/a")}, &Downstream{}, countingResolver{&n})
	if s.Route().Name() != "/a" || s.Route().Name() != "/a" || n != 1 {
		t.Fatalf("route resolved %d times, want once", n)
	}
	s.Request.Path = []byte("/b")
	s.ClearRouteCache()
	if s.Route().Name() != "/b" || n != 2 {
		t.Fatalf("after ClearRouteCache: route %q, resolved %d times", s.Route().Name(), n)
	}
}

func TestOnEndRunsLastFirstOnce(t *testing.T) {
	var got []int
	s := NewStream(context.Background(), &l7.Request{}, &Downstream{}, nil)
	s.OnEnd(func() { got = append(got, 1) })
	s.OnEnd(func() { got = append(got, 2) })
	s.End()
	s.End()
	if diff := cmp.Diff([]int{2, 1}, got); diff != "" {
		t.Fatalf("OnEnd order (-want +got):\n%s", diff)
	}
}

func TestStreamDetectsGRPC(t *testing.T) {
	req := &l7.Request{}
	req.Header.Add("content-type", "application/grpc+proto")
	if !NewStream(context.Background(), req, &Downstream{}, nil).GRPC {
		t.Fatal("gRPC request not detected")
	}
}

func TestFlagsPrintInEnvoysOrder(t *testing.T) {
	s := NewStream(context.Background(), &l7.Request{}, &Downstream{}, nil)
	for _, f := range []Flags{FlagURX, FlagUF, FlagUT, FlagUF} {
		s.AddResponseFlag(f)
	}
	if got := s.ResponseFlags.String(); got != "UT,UF,URX" {
		t.Fatalf("flags %q, want UT,UF,URX", got)
	}
	if Flags(0).String() != "" {
		t.Fatal("no flags should print empty")
	}
	if got := testing.AllocsPerRun(100, func() { _ = FlagUAEX.String() }); got != 0 {
		t.Errorf("one flag's String allocates %v times", got)
	}
}

// TestFlagConstants checks each constant against Envoy's short name, in
// Envoy's order, and FlagFor (config text) against the constants.
func TestFlagConstants(t *testing.T) {
	consts := []struct {
		f    Flags
		name string
	}{
		{FlagLH, "LH"}, {FlagUH, "UH"}, {FlagUT, "UT"}, {FlagLR, "LR"}, {FlagUR, "UR"}, {FlagUF, "UF"},
		{FlagUC, "UC"}, {FlagUO, "UO"}, {FlagNR, "NR"}, {FlagDI, "DI"}, {FlagFI, "FI"}, {FlagRL, "RL"},
		{FlagUAEX, "UAEX"}, {FlagRLSE, "RLSE"}, {FlagDC, "DC"}, {FlagURX, "URX"}, {FlagSI, "SI"},
		{FlagIH, "IH"}, {FlagDPE, "DPE"}, {FlagUMSDR, "UMSDR"}, {FlagRFCF, "RFCF"}, {FlagNFCF, "NFCF"},
		{FlagDT, "DT"}, {FlagUPE, "UPE"}, {FlagNC, "NC"}, {FlagOM, "OM"}, {FlagDF, "DF"}, {FlagDO, "DO"},
	}
	if len(consts) != len(flagNames) {
		t.Fatalf("%d constants for %d flags", len(consts), len(flagNames))
	}
	for i, c := range consts {
		if c.f != 1<<i || c.f.String() != c.name || FlagFor(c.name) != c.f {
			t.Errorf("flag %d: constant %#x prints %q, FlagFor(%q) = %#x", i, uint32(c.f), c.f, c.name, uint32(FlagFor(c.name)))
		}
	}
	if FlagFor("NOPE") != 0 || FlagFor("") != 0 {
		t.Error("an unknown name should be no flag")
	}
	if FlagOf(status.Timeout) != FlagUT || FlagOf(status.Unknown) != 0 {
		t.Error("FlagOf does not follow the kinds' flags")
	}
}

func TestLookup(t *testing.T) {
	if _, err := Lookup("envoy.filters.http.nope", "type.googleapis.com/nope.Config"); err == nil {
		t.Fatal("unknown filter found")
	}
}

// attempts is a terminal that made n tries and failed with err.
type attempts struct {
	n   int
	err error
}

func (a attempts) Serve(s *Stream) error {
	s.Attempts = a.n
	return a.err
}

// TestUpstreamFailureReplies checks the local reply an upstream failure
// becomes, as Envoy's router answers it: its kind's status and flag, and
// Envoy's words, "retried and the latest" after more than one try.
func TestUpstreamFailureReplies(t *testing.T) {
	const reset = "upstream connect error or disconnect/reset before headers. "
	for _, tc := range []struct {
		name   string
		tries  int
		err    error
		status int
		flag   string
		body   string
	}{
		{"connection termination", 1, status.New(status.ConnectionTermination, errors.New("http1: reading response head: unexpected EOF")),
			503, "UC", reset + "reset reason: connection termination"},
		{"connection termination after a retry", 2, status.New(status.ConnectionTermination, errors.New("http2: connection closed")),
			503, "UC", reset + "retried and the latest reset reason: connection termination"},
		{"connect failure", 1, status.New(status.ConnectFailure, errors.New("refused")), 503, "UF", reset + "reset reason: upstream connect failure: refused"},
		{"remote reset after a retry", 3, status.New(status.UpstreamReset, errors.New("stream reset")), 503, "UR", reset + "retried and the latest reset reason: upstream reset: stream reset"},
		{"no healthy upstream", 1, status.New(status.NoHealthyUpstream, nil), 503, "UH", "no healthy upstream"},
		{"timeout", 2, status.New(status.Timeout, nil), 504, "UT", "upstream request timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStream(context.Background(), &l7.Request{}, &Downstream{}, nil)
			NewChain(attempts{tc.tries, tc.err}).Run(s)
			if s.Local == nil {
				t.Fatal("no local reply")
			}
			if s.Local.Status != tc.status || s.ResponseFlags.String() != tc.flag || s.Local.Body != tc.body || s.Local.Kind != status.KindOf(tc.err) {
				t.Errorf("got %d %q %q (kind %v), want %d %q %q", s.Local.Status, s.ResponseFlags, s.Local.Body, s.Local.Kind, tc.status, tc.flag, tc.body)
			}
		})
	}
}

// TestSendLocalReplyReplacesTheFlag: a local reply that replaces an
// earlier one takes the earlier one's flag away; flags added otherwise
// stay.
func TestSendLocalReplyReplacesTheFlag(t *testing.T) {
	tests := []struct {
		name    string
		added   Flags // AddResponseFlag before the first reply
		first   Flags
		replace bool // a second reply, with again
		again   Flags
		want    Flags
	}{
		{"one reply", 0, FlagUT, false, 0, FlagUT},
		{"replaced, no flag", 0, FlagUT, true, 0, 0},
		{"replaced by another flag", 0, FlagDC, true, FlagSI, FlagSI},
		{"an added flag stays", FlagURX, FlagUT, true, FlagSI, FlagURX | FlagSI},
		{"same flag again", 0, FlagNR, true, FlagNR, FlagNR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Stream
			s.AddResponseFlag(tc.added)
			s.SendLocalReply(504, "first", tc.first)
			if tc.replace {
				s.SendLocalReply(408, "again", tc.again)
			}
			if s.ResponseFlags != tc.want {
				t.Errorf("flags %q, want %q", s.ResponseFlags, tc.want)
			}
		})
	}
}

package accesslog

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func record() *Record {
	req := &l7.Request{Method: "GET", Path: []byte("/api/v1?x=1"), Authority: []byte("reviews:9080"), Proto: l7.HTTP11}
	req.Header.Add("user-agent", "curl/8")
	req.Header.Add("x-request-id", "id-1")
	req.Header.Add("x-forwarded-for", "1.2.3.4")
	resp := &l7.Response{Status: 503}
	resp.Header.Add("x-envoy-upstream-service-time", "7")
	down := &filters.Downstream{PeerURI: "spiffe://cluster.local/ns/default/sa/client",
		RemoteAddr: netip.MustParseAddrPort("127.0.60.21:40000"), Destination: netip.MustParseAddrPort("127.10.0.10:9080"),
		Authority: "127.10.0.10:9080"}
	return &Record{
		Start: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC), Duration: 12 * time.Millisecond,
		Request: req, Response: resp, Downstream: down, Code: 503, Flags: filters.FlagUF | filters.FlagURX,
		BytesIn: 10, BytesOut: 91, Cluster: "outbound|9080||reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"),
		Failure: "connection refused", RouteName: "default", Details: "upstream_reset_before_response_started{connection_failure}",
		Destination: func(f string) string { return map[string]string{"app": "reviews"}[f] },
	}
}

func TestTextFormats(t *testing.T) {
	cases := []struct{ format, want string }{
		{IstioFormat, `[2026-01-02T03:04:05.678Z] "GET /api/v1?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "connection refused" 10 91 12 7 "1.2.3.4" "curl/8" "id-1" "reviews:9080" "127.0.60.11:9080" outbound|9080||reviews - 127.10.0.10:9080 127.0.60.21:40000 - default` + "\n"},
		{"%REQ(:PATH):4% %REQ(X-MISSING?USER-AGENT)% %RESP(X-NONE)% %%", "/api curl/8 - %"},
		{"%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %FILTER_STATE(io.istio.connect_authority:PLAIN)% %FILTER_STATE(upstream_peer_obj:FIELD:app)%",
			"spiffe://cluster.local/ns/default/sa/client 127.0.60.21 127.10.0.10:9080 reviews"},
	}
	for _, c := range cases {
		f, err := Compile(c.format, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(f.Append(nil, record())); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.format, got, c.want)
		}
	}
	for _, bad := range []string{"%NOPE%", "%REQ%", "%START_TIME(%s)%", "%DURATION(x)%", "%REQ(a", "50% off"} {
		if _, err := Compile(bad, false); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	f, err := CompileJSON(map[string]string{
		"code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "path": "%REQ(:PATH)%", "ua": "agent \"%REQ(USER-AGENT)%\"",
		"sni": "%REQUESTED_SERVER_NAME%", "bytes": "%BYTES_SENT%", "literal": "x",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	line := f.Append(nil, record())
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{"code": 503.0, "flags": "UF,URX", "path": "/api/v1?x=1", "ua": `agent "curl/8"`, "sni": nil, "bytes": 91.0, "literal": "x"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %#v, want %#v (line %s)", k, got[k], v, line)
		}
	}
	omit, _ := CompileJSON(map[string]string{"sni": "%REQUESTED_SERVER_NAME%", "code": "%RESPONSE_CODE%"}, true)
	if got := string(omit.Append(nil, record())); got != `{"code":503}`+"\n" {
		t.Errorf("omit_empty_values: %s", got)
	}
}

func TestSinksWriteFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, _ := Compile("%RESPONSE_CODE% %REQ(X-REQUEST-ID)%\n", false)
	s := &Sinks{}
	for range 100 {
		s.Emit([]*Logger{{Path: path, Format: f}}, record())
	}
	big := &Record{Code: 200, Request: &l7.Request{}}
	big.Request.Header.Add("x-request-id", strings.Repeat("y", 1000))
	for range 200 { // past FlushBytes: written before the interval
		s.Emit([]*Logger{{Path: path, Format: f}}, big)
	}
	s.Close()
	s.Emit([]*Logger{{Path: path, Format: f}}, record()) // after Close: dropped
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "503 id-1\n"); lines != 100 {
		t.Errorf("%d lines, want 100", lines)
	}
	if lines := strings.Count(string(b), "200 yyy"); lines != 200 {
		t.Errorf("%d long lines, want 200", lines)
	}
}

func BenchmarkIstioFormat(b *testing.B) {
	f, _ := Compile(IstioFormat, false)
	r := record()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for range b.N {
		buf = f.Append(buf[:0], r)
	}
}

// TestStreamDetails checks %RESPONSE_CODE_DETAILS% for streams whose
// filters said nothing, in Envoy's words.
func TestStreamDetails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local int // status of a local reply; 0: an upstream response
		flags filters.Flags
		want  string
	}{
		{"upstream response", 0, 0, "via_upstream"},
		{"connect failure", 503, filters.FlagUF, "upstream_reset_before_response_started{connection_failure}"},
		{"connect failures, retries exhausted", 503, filters.FlagUF | filters.FlagURX, "upstream_reset_before_response_started{connection_failure}"},
		{"connection termination", 503, filters.FlagUC, "upstream_reset_before_response_started{connection_termination}"},
		{"connection terminations, retries exhausted", 503, filters.FlagUC | filters.FlagURX, "upstream_reset_before_response_started{connection_termination}"},
		{"no route", 404, filters.FlagNR, "route_not_found"},
		{"timeout", 504, filters.FlagUT, "upstream_response_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := filters.NewStream(t.Context(), &l7.Request{}, &filters.Downstream{}, nil)
			if tc.local == 0 {
				s.Response = &l7.Response{Status: 200}
			} else {
				s.SendLocalReply(tc.local, "", tc.flags&^filters.FlagURX)
				s.AddResponseFlag(tc.flags & filters.FlagURX)
			}
			if got := StreamDetails(s); got != tc.want {
				t.Errorf("details %q, want %q", got, tc.want)
			}
		})
	}
}

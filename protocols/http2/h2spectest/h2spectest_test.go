package h2spectest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A report as h2spec v2.2.1 writes it (abridged): cases are numbered by
// their position in their section; a failed case is an <error> whose text
// is the outcomes expected, one a line, then the outcome seen.
const report = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="4.3. Header Compression and Decompression" package="http2/4.3" id="4.3" tests="3" skipped="0" failures="0" errors="2">
    <testcase package="http2/4.3" classname="Sends invalid header block fragment" time="0.0010"></testcase>
    <testcase package="http2/4.3" classname="Sends a PRIORITY frame while sending the header blocks" time="0.0010">
      <error>GOAWAY Frame (Error Code: PROTOCOL_ERROR)
Connection closed
Error: read tcp 127.0.0.1:1-&gt;127.0.0.1:2: read: connection reset by peer</error>
    </testcase>
    <testcase package="http2/4.3" classname="Sends a HEADERS frame to another stream while sending the header blocks" time="0.0010">
      <error>RST_STREAM Frame (Error Code: FLOW_CONTROL_ERROR)
Error: read: connection reset by peer ` + "\x01" + `</error>
    </testcase>
  </testsuite>
  <testsuite name="3.5. HTTP/2 Connection Preface" package="http2/3.5" id="3.5" tests="1" skipped="0" failures="1" errors="0">
    <testcase package="http2/3.5" classname="Sends invalid connection preface" time="0.0010"><failure>Timeout</failure></testcase>
  </testsuite>
</testsuites>`

func TestParseReport(t *testing.T) {
	got, err := parseReport([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	want := []Case{
		{ID: "http2/4.3/1", Desc: "Sends invalid header block fragment"},
		{ID: "http2/4.3/2", Desc: "Sends a PRIORITY frame while sending the header blocks", Failed: true,
			Detail: "GOAWAY Frame (Error Code: PROTOCOL_ERROR)\nConnection closed\nError: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"},
		{ID: "http2/4.3/3", Desc: "Sends a HEADERS frame to another stream while sending the header blocks", Failed: true,
			Detail: "RST_STREAM Frame (Error Code: FLOW_CONTROL_ERROR)\nError: read: connection reset by peer"},
		{ID: "http2/3.5/1", Desc: "Sends invalid connection preface", Failed: true, Detail: "Timeout"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseReport (-want +got):\n%s", d)
	}
	// Only a reset where a close would have done is taken for a close.
	for i, want := range []bool{false, true, false, false} {
		if r := resetAsClose(got[i].Detail); r != want {
			t.Errorf("%s: resetAsClose = %v, want %v", got[i].ID, r, want)
		}
	}
}

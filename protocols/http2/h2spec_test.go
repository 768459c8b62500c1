package http2

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// h2specMaxFailures is the most failures TestH2Spec accepts; each one
// left is explained in README.md.
const h2specMaxFailures = 4

// okHandler answers 200 with a small body after draining the request.
var okHandler = HandlerFunc(func(st *ServerStream) {
	if body := st.Request().Body; body != nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return
		}
	}
	resp := &l7.Response{Status: 200, Body: strings.NewReader("hello h2spec\n"), ContentLength: 13}
	resp.Header.Add("content-type", "text/plain")
	st.WriteResponse(resp)
})

// junitReport is the part of h2spec's JUnit report we read.
type junitReport struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestH2Spec(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not available to install h2spec")
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, goBin, "install", "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible")
	install.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing h2spec: %v\n%s", err, out)
	}

	ts := startServer(t, Config{}, okHandler)
	_, port, _ := net.SplitHostPort(ts.addr())
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	run := exec.CommandContext(ctx, filepath.Join(bin, "h2spec"), "-h", testHost, "-p", port, "-o", "3", "-j", report)
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	err = run.Run() // exits non-zero when any case fails
	raw, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec: %v, no report (%v)\n%s", err, rerr, out.String())
	}
	// Error texts in the report may quote raw frame bytes.
	raw = bytes.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' {
			return ' '
		}
		return r
	}, raw)
	var rep junitReport
	if err := xml.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	passed, failed := 0, 0
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil || c.Error != nil {
				failed++
				t.Logf("h2spec failure: %s: %s", s.Name, c.Name)
			} else {
				passed++
			}
		}
	}
	t.Logf("h2spec: %d passed, %d failed", passed, failed)
	if i := strings.Index(out.String(), "Failures:"); i >= 0 {
		t.Logf("h2spec %s", out.String()[i:])
	}

	if passed == 0 || failed > h2specMaxFailures {
		t.Fatalf("h2spec: %d failures (at most %d allowed)\n%s", failed, h2specMaxFailures, tail(out.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

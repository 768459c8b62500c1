package http2

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/http2/h2spectest"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

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

// TestH2Spec runs h2spec (pinned by go.mod's tool directive, see package
// h2spectest) against a plain h2c ServeConn, in default and strict mode.
// Every case must pass: the handler reads the whole request before it
// answers, so none of the races of e2e/TestL7H2Spec (a server that answers
// before the request ends) can happen here.
func TestH2Spec(t *testing.T) {
	for _, mode := range []struct {
		name string
		args []string
	}{{"default", nil}, {"strict", []string{"-S"}}} {
		t.Run(mode.name, func(t *testing.T) {
			ts := startServer(t, Config{}, okHandler)
			_, port, _ := net.SplitHostPort(ts.addr())
			r := h2spectest.Run(t, testHost, port, 3*time.Second, mode.args...)
			h2spectest.Check(t, r, nil)
		})
	}
}

package http2

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Field names reach the wire lower-case whatever case the model holds
// (a filter may Set "X-Caller"), and a name that is not a token is refused
// before anything is sent: x/net's peers, which refuse an upper-case name
// as a malformed message (RFC 9113 §8.2.1), take ours.

func TestUpperCaseRequestNamesReachXNetServer(t *testing.T) {
	addr := startXNetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Got-Trailer")
		io.WriteString(w, r.Header.Get("X-Caller")+","+r.Header.Get("Connection"))
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Sum"))
	}))
	cc := dialClient(t, addr, Config{})
	req := newRequest("POST", "backend", "/")
	req.Header.Set("X-Caller", "productpage")
	req.Header.Set("Connection", "close") // lower-cased first, then dropped as connection-specific
	req.Body, req.ContentLength = strings.NewReader("body"), 4
	req.Header.Set("Trailer", "X-Sum") // x/net's server keeps declared trailers only
	req.Trailer.Set("X-Sum", "abc")
	resp, err := cc.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(body) != "productpage," {
		t.Errorf("got %d %q, want 200 %q", resp.Status, body, "productpage,")
	}
	if v, _ := resp.Trailer.Get("x-got-trailer"); string(v) != "abc" {
		t.Errorf("the server got trailer X-Sum %q, want abc", v)
	}
}

func TestInvalidRequestNameRefusedBeforeSending(t *testing.T) {
	var got atomic.Int32
	addr := startXNetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	cc := dialClient(t, addr, Config{})
	for _, name := range []string{"X Caller", "x-caller\r\nevil", "", ":path", "x-caller:"} {
		req := newRequest("GET", "backend", "/")
		req.Header.Add("x-ok", "1")
		req.Header.Add(name, "v")
		_, err := cc.RoundTrip(context.Background(), req)
		if status.KindOf(err) != status.InvalidHeader || !strings.Contains(err.Error(), "request header field name "+strconvQuote(name)+" is not a token") {
			t.Errorf("name %q: err = %v, want an InvalidHeader naming it", name, err)
		}
	}
	// The connection is fine (the dynamic table untouched) and its slots
	// were given back.
	if st := cc.State(); st.ActiveStreams != 0 {
		t.Errorf("%d slots still taken", st.ActiveStreams)
	}
	resp, err := cc.RoundTrip(context.Background(), newRequest("GET", "backend", "/"))
	if err != nil || resp.Status != 200 {
		t.Fatalf("after the refusals: %v", err)
	}
	if resp.Body != nil {
		io.Copy(io.Discard, resp.Body)
	}
	if n := got.Load(); n != 1 {
		t.Errorf("the server saw %d requests, want the last one only", n)
	}
}

func TestUpperCaseResponseNamesReachXNetClient(t *testing.T) {
	writeErr := make(chan error, 1)
	ts := startServer(t, Config{}, HandlerFunc(func(st *ServerStream) {
		switch string(st.Request().Path) {
		case "/bad":
			resp := &l7.Response{Status: 200}
			resp.Header.Set("Bad Name", "v")
			writeErr <- st.WriteResponse(resp)
			st.WriteResponse(&l7.Response{Status: 500}) // nothing was sent: an answer still fits
		default:
			resp := &l7.Response{Status: 200, Body: strings.NewReader("ok"), ContentLength: 2}
			resp.Header.Set("X-Served-By", "waypoint")
			resp.Trailer.Set("X-Sum", "abc")
			st.WriteResponse(resp)
		}
	}))
	client := xnetClient(t)
	resp, err := client.Get("http://" + ts.addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != "waypoint" || resp.Trailer.Get("X-Sum") != "abc" {
		t.Errorf("got %d header %v trailer %v", resp.StatusCode, resp.Header, resp.Trailer)
	}

	resp, err = client.Get("http://" + ts.addr() + "/bad")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-writeErr; status.KindOf(err) != status.InvalidHeader || !strings.Contains(err.Error(), `response header field name "Bad Name"`) {
		t.Errorf("WriteResponse = %v, want an InvalidHeader naming the field", err)
	}
	if resp.StatusCode != 500 {
		t.Errorf("got %d, want the 500 written after the refusal", resp.StatusCode)
	}
}

// TestEncoderLowerCasesNames: the block's names are lower-case on the
// wire, connection-specific ones dropped after lower-casing, and a name
// already lower-case costs no allocation.
func TestEncoderLowerCasesNames(t *testing.T) {
	var e headerEncoder
	e.init()
	var h l7.Header
	h.Add("X-Caller", "productpage")
	h.Add("Content-Type", "text/plain")
	h.Add("Transfer-Encoding", "chunked")
	h.Add("x-request-id", "1")
	upper, err := checkNames(&h, "response header")
	if err != nil || !upper {
		t.Fatalf("checkNames = %v, %v; want upper-case names found", upper, err)
	}
	var names []string
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { names = append(names, f.Name) })
	if _, err := dec.Write(e.response(&l7.Response{Status: 200, Header: h}, upper)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != ":status x-caller content-type x-request-id" {
		t.Errorf("names on the wire: %s", got)
	}

	var lower l7.Header
	lower.Add("content-type", "text/plain")
	lower.Add("x-request-id", "1")
	resp := &l7.Response{Status: 200, Header: lower}
	if n := testing.AllocsPerRun(100, func() {
		up, err := checkNames(&resp.Header, "response header")
		if err != nil || up {
			t.Fatal(up, err)
		}
		e.response(resp, up)
	}); n != 0 {
		t.Errorf("lower-case names: %v allocations per block", n)
	}
	resp.Header = h
	e.response(resp, true) // intern the lower-cased names
	if n := testing.AllocsPerRun(100, func() { e.response(resp, true) }); n != 0 {
		t.Errorf("upper-case names, once interned: %v allocations per block", n)
	}
}

func strconvQuote(s string) string {
	var b strings.Builder
	b.WriteString(`"`)
	b.WriteString(strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s))
	b.WriteString(`"`)
	return b.String()
}

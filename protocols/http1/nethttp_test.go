package http1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// echoModel answers with the request as parsed: method, authority, path,
// content length and the fields in x-got-* response fields, the body
// echoed, and each request trailer as a response trailer x-echo-<name>.
func echoModel(c *ServerConn, req *l7.Request) error {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return err
		}
	}
	resp := &l7.Response{Status: 200, ContentLength: int64(len(body)), Body: strings.NewReader(string(body))}
	resp.Header.Add("x-got-method", req.Method)
	resp.Header.Add("x-got-authority", string(req.Authority))
	resp.Header.Add("x-got-path", string(req.Path))
	resp.Header.Add("x-got-length", strconv.FormatInt(req.ContentLength, 10))
	if v, ok := req.Header.Get("x-foo"); ok {
		resp.Header.Add("x-got-foo", string(v))
	}
	if req.Trailer.Len() > 0 {
		resp.ContentLength = -1
		for _, f := range req.Trailer.Fields() {
			resp.Trailer.Add("x-echo-"+string(f.Name), string(f.Value))
		}
	}
	return c.WriteResponse(req, resp)
}

// TestNetHTTPClient drives a ServerConn with Go's http.Client.
func TestNetHTTPClient(t *testing.T) {
	ln := listen(t, 10)
	accepted := serveCodec(t, ln, ServerConfig{}, echoModel)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 20, 100)}}
			return d.DialContext(ctx, network, ln.Addr().String())
		},
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: safety}

	tests := []struct {
		name        string
		method      string
		body        io.Reader
		length      int64
		trailer     http.Header
		wantLength  string
		wantTrailer string
	}{
		{name: "GET", method: "GET", wantLength: "0"},
		{name: "POST", method: "POST", body: strings.NewReader("hello"), length: 5, wantLength: "5"},
		{name: "chunked POST", method: "POST", body: io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")), length: -1, wantLength: "-1"},
		{name: "chunked POST with trailers", method: "POST", body: strings.NewReader("hello"), length: -1,
			trailer: http.Header{"X-Sum": {"42"}}, wantLength: "-1", wantTrailer: "42"},
		{name: "HEAD", method: "HEAD", wantLength: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://svc.test:8080/a/b?c=d", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tt.length
			req.Header.Set("X-Foo", " bar ")
			req.Trailer = tt.trailer
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{
				"method":    resp.Header.Get("X-Got-Method"),
				"authority": resp.Header.Get("X-Got-Authority"),
				"path":      resp.Header.Get("X-Got-Path"),
				"length":    resp.Header.Get("X-Got-Length"),
				"foo":       resp.Header.Get("X-Got-Foo"),
				"trailer":   resp.Trailer.Get("X-Echo-X-Sum"),
			}
			want := map[string]string{
				"method": tt.method, "authority": "svc.test:8080", "path": "/a/b?c=d",
				"length": tt.wantLength, "foo": "bar", "trailer": tt.wantTrailer,
			}
			if tt.method == "HEAD" {
				want = map[string]string{"method": "HEAD", "authority": "svc.test:8080", "path": "/a/b?c=d", "length": "0", "foo": "bar", "trailer": ""}
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			wantBody := ""
			if tt.method == "POST" {
				wantBody = "hello"
			}
			if string(body) != wantBody {
				t.Errorf("body %q, want %q", body, wantBody)
			}
		})
	}
	if *accepted != 1 {
		t.Errorf("http.Client opened %d connections, want 1 kept alive", *accepted)
	}
}

// TestNetHTTPServer drives Go's http.Server with a ClientConn.
func TestNetHTTPServer(t *testing.T) {
	ln := listen(t, 11)
	srv := &http.Server{
		ReadHeaderTimeout: safety,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			h := w.Header()
			h.Set("X-Got-Method", r.Method)
			h.Set("X-Got-Host", r.Host)
			h.Set("X-Got-Path", r.URL.RequestURI())
			h.Set("X-Got-Length", strconv.FormatInt(r.ContentLength, 10))
			h.Set("X-Got-Chunked", strconv.FormatBool(len(r.TransferEncoding) > 0))
			h.Set("X-Got-Foo", r.Header.Get("X-Foo"))
			if len(r.Trailer) > 0 {
				h.Set("Trailer", "X-Echo")
			}
			w.Write(body)
			if len(r.Trailer) > 0 {
				h.Set("X-Echo", r.Trailer.Get("X-Sum"))
			}
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()

	conn := dial(t, ln.Addr().String())
	defer conn.Close()
	c := NewClientConn(conn, ClientConfig{})

	tests := []struct {
		name    string
		method  string
		body    string
		length  int64
		trailer bool
		want    map[string]string
	}{
		{name: "GET", method: "GET",
			want: map[string]string{"x-got-length": "0", "x-got-chunked": "false"}},
		{name: "POST", method: "POST", body: "hello", length: 5,
			want: map[string]string{"x-got-length": "5", "x-got-chunked": "false"}},
		{name: "chunked POST", method: "POST", body: "hello", length: -1,
			want: map[string]string{"x-got-length": "-1", "x-got-chunked": "true"}},
		{name: "chunked POST with trailers", method: "POST", body: "hello", length: -1, trailer: true,
			want: map[string]string{"x-got-length": "-1", "x-got-chunked": "true", "trailer:x-echo": "42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &l7.Request{Method: tt.method, Authority: []byte("svc.test"), Path: []byte("/p?q=1"), ContentLength: tt.length}
			if tt.method == "POST" {
				req.Body = strings.NewReader(tt.body)
			}
			req.Header.Add("x-foo", "bar")
			if tt.trailer {
				req.Header.Add("trailer", "x-sum")
				req.Trailer.Add("x-sum", "42")
			}
			if err := c.WriteRequest(req); err != nil {
				t.Fatal(err)
			}
			var resp l7.Response
			if err := c.ReadResponse(req, &resp); err != nil {
				t.Fatal(err)
			}
			m := responseModel(t, &resp)
			if resp.Status != 200 || m.Body != tt.body {
				t.Errorf("status %d body %q", resp.Status, m.Body)
			}
			want := map[string]string{"x-got-method": tt.method, "x-got-host": "svc.test", "x-got-path": "/p?q=1", "x-got-foo": "bar"}
			for k, v := range tt.want {
				want[k] = v
			}
			for k, v := range want {
				var got string
				if name, ok := strings.CutPrefix(k, "trailer:"); ok {
					got = resp.Trailer.GetString(name)
				} else {
					got = resp.Header.GetString(k)
				}
				if got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if !c.Reusable() {
				t.Fatal("not reusable")
			}
		})
	}
}

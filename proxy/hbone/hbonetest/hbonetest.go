// Package hbonetest has helpers for tests that speak HBONE by hand: raw
// HTTP/2 connections for requests a Pool never sends (other methods, bad
// authorities) and streams held open across refusals.
package hbonetest

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/net/http2"
)

// ClientConn dials addr with conf and returns an HTTP/2 client connection,
// closed when the test ends.
func ClientConn(t testing.TB, addr string, conf *tls.Config) *http2.ClientConn {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		tc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Connect returns a CONNECT request for authority whose body is body (nil
// for none).
func Connect(authority string, body io.ReadCloser) *http.Request {
	return &http.Request{Method: http.MethodConnect, Host: authority, URL: &url.URL{Host: authority},
		Header: http.Header{}, Body: body, ContentLength: -1}
}

// Request returns a request with another method, which HBONE refuses.
func Request(method, authority string) *http.Request {
	return &http.Request{Method: method, Host: authority, URL: &url.URL{Scheme: "https", Host: authority, Path: "/"}, Header: http.Header{}}
}

// Status sends a request with method (CONNECT or another) to authority on
// cc and returns the answer's status.
func Status(t testing.TB, cc *http2.ClientConn, method, authority string) int {
	t.Helper()
	req := Connect(authority, nil)
	if method != http.MethodConnect {
		req = Request(method, authority)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// EchoStream is a CONNECT stream to an echo service, held open so that a
// test can check it still works after something else happened on its
// connection.
type EchoStream struct {
	w    *io.PipeWriter
	resp *http.Response
}

// OpenEcho opens a CONNECT stream to authority, which must echo, on cc. It
// is closed when the test ends.
func OpenEcho(t testing.TB, cc *http2.ClientConn, authority string) *EchoStream {
	t.Helper()
	pr, pw := io.Pipe()
	resp, err := cc.RoundTrip(Connect(authority, pr))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("CONNECT %s: %d", authority, resp.StatusCode)
	}
	t.Cleanup(func() { pw.Close(); resp.Body.Close() })
	return &EchoStream{w: pw, resp: resp}
}

// Ping sends msg and fails the test unless it comes back.
func (s *EchoStream) Ping(t testing.TB, msg string) {
	t.Helper()
	s.w.Write([]byte(msg))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s.resp.Body, buf); err != nil || string(buf) != msg {
		t.Fatalf("the stream held open broke: got %q, %v", buf, err)
	}
}

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

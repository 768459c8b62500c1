package status

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestMapping(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		kind  Kind
		http  int
		hbone int
		flag  string
	}{
		{"plain error", errors.New("boom"), Unknown, 503, 503, ""},
		{"no route", New(NoRoute, nil), NoRoute, 404, 503, "NR"},
		{"wrapped connect failure", fmt.Errorf("dial: %w", New(ConnectFailure, errors.New("refused"))), ConnectFailure, 503, 503, "UF"},
		{"timeout", New(Timeout, nil), Timeout, http.StatusGatewayTimeout, 503, "UT"},
		{"denied", New(Denied, nil), Denied, 403, 401, "RBAC"},
		{"bad request", New(BadRequest, nil), BadRequest, 400, 400, ""},
		{"no healthy upstream", New(NoHealthyUpstream, nil), NoHealthyUpstream, 503, 503, "UH"},
		{"invalid header", fmt.Errorf("sending: %w", New(InvalidHeader, errors.New(`name "X Caller" is not a token`))), InvalidHeader, 500, 503, ""},
		{"upstream reset", New(UpstreamReset, nil), UpstreamReset, 503, 503, "UR"},
		{"connection termination", fmt.Errorf("exchange: %w", New(ConnectionTermination, errors.New("EOF"))), ConnectionTermination, 503, 503, "UC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := KindOf(c.err)
			if k != c.kind || k.HTTPStatus() != c.http || k.HBONEStatus() != c.hbone || k.ResponseFlag() != c.flag {
				t.Errorf("got kind %v http %d hbone %d flag %q; want %v %d %d %q",
					k, k.HTTPStatus(), k.HBONEStatus(), k.ResponseFlag(), c.kind, c.http, c.hbone, c.flag)
			}
		})
	}
}

func TestErrorMessageAndUnwrap(t *testing.T) {
	inner := errors.New("connection refused")
	err := New(ConnectFailure, inner)
	if got, want := err.Error(), "upstream connect failure: connection refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, inner) {
		t.Error("errors.Is does not reach the wrapped error")
	}
}

func TestGRPCFromHTTP(t *testing.T) {
	for httpStatus, want := range map[int]int{200: 0, 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14, 418: 2, 500: 2} {
		if got := GRPCFromHTTP(httpStatus); got != want {
			t.Errorf("GRPCFromHTTP(%d) = %d, want %d", httpStatus, got, want)
		}
	}
}

// A local reply's kind gives the Dubbo status issue 5 names: no route 60,
// denied 40, upstream timeout 31, no healthy upstream 80.
func TestDubboStatus(t *testing.T) {
	for k, want := range map[Kind]int{NoRoute: 60, Denied: 40, BadRequest: 40, Timeout: 31, NoHealthyUpstream: 80,
		Overflow: 100, DownstreamGone: 90, Unknown: 80, ConnectionTermination: 80} {
		if got := k.DubboStatus(); got != want {
			t.Errorf("%v: Dubbo status %d, want %d", k, got, want)
		}
	}
}

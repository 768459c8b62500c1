package httpconn

import (
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/xds"
)

func TestNormalizePath(t *testing.T) {
	normalize := &xds.HTTPConnectionManager{NormalizePath: true}
	merge := &xds.HTTPConnectionManager{NormalizePath: true, MergeSlashes: true}
	reject := &xds.HTTPConnectionManager{EscapedSlashes: xds.EscapedSlashesReject}
	unescape := &xds.HTTPConnectionManager{EscapedSlashes: xds.EscapedSlashesUnescape, NormalizePath: true}
	off := &xds.HTTPConnectionManager{}
	cases := []struct {
		hcm      *xds.HTTPConnectionManager
		in, want string
		ok       bool
	}{
		{normalize, "/a/b", "/a/b", true},
		{normalize, "/a/./b", "/a/b", true},
		{normalize, "/a/../b?x=/../", "/b?x=/../", true},
		{normalize, "/../../a", "/a", true},
		{normalize, "/a/b/..", "/a/", true},
		{normalize, "/a/.hidden/..b", "/a/.hidden/..b", true},
		{normalize, "/a//b", "/a//b", true},
		{merge, "/a//b///c", "/a/b/c", true},
		{off, "/a/../b", "/a/../b", true},
		{reject, "/a%2Fb", "", false},
		{reject, "/a%5cb", "", false},
		{unescape, "/a%2F..%2Fb", "/b", true},
		{normalize, "relative", "", false},
		{normalize, "", "", false},
	}
	for _, c := range cases {
		req := &l7.Request{Method: "GET", Path: []byte(c.in)}
		ok := normalizePath(req, c.hcm)
		if ok != c.ok || (ok && string(req.Path) != c.want) {
			t.Errorf("%q: got %q ok=%v, want %q ok=%v", c.in, req.Path, ok, c.want, c.ok)
		}
	}
	opts := &l7.Request{Method: "OPTIONS", Path: []byte("*")}
	if !normalizePath(opts, normalize) {
		t.Error("OPTIONS * refused")
	}
}

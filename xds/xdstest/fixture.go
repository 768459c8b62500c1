// Package xdstest gives tests the xDS istiod generates for a waypoint
// (xds/testdata/istiod, a copy of ../shared/istiod) as resources, and
// helpers to write resource directories for xdsserver.
package xdstest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

// ReviewsDir is the directory of the reviews fixture.
func ReviewsDir() string { return filepath.Join(testdataDir(), "reviews") }

// testdataDir is xds/testdata/istiod.
func testdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "istiod")
}

// Reviews loads the reviews fixture whole.
func Reviews(tb testing.TB) *xds.Resources {
	tb.Helper()
	r, err := xds.LoadResourceDir(ReviewsDir())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// WriteDir writes r into dir in the fixture format, replacing the files
// atomically (a rename), so that a server polling dir never reads half a
// file.
func WriteDir(tb testing.TB, dir string, r *xds.Resources) {
	tb.Helper()
	write := func(name string, data []byte, err error) {
		if err != nil {
			tb.Fatal(err)
		}
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := xds.MarshalResourceList(r.Listeners)
	write(xds.ListenersFile, b, err)
	b, err = xds.MarshalResourceList(r.Clusters)
	write(xds.ClustersFile, b, err)
	b, err = xds.MarshalResourceList(r.Endpoints)
	write(xds.EndpointsFile, b, err)
	if len(r.Routes) > 0 {
		b, err = xds.MarshalResourceList(r.Routes)
		write(xds.RoutesFile, b, err)
	}
}

// Contains reports whether s contains every part.
func Contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

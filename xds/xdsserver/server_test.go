package xdsserver

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// Tests of this package bind nothing: they reload directories.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A directory is served as version 1; a reload of unchanged files pushes
// nothing, a change pushes the next version, a file that does not parse
// is refused with the version being served kept.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	r := xdstest.Reviews(t)
	xdstest.WriteDir(t, dir, r)
	s, err := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := s.Version(); v != "1" {
		t.Fatalf("first version %q, want 1", v)
	}
	if pushed, err := s.Reload(); pushed || err != nil || s.Version() != "1" {
		t.Errorf("unchanged files: pushed %v, %v, version %s", pushed, err, s.Version())
	}

	r.Endpoints = r.Endpoints[1:]
	xdstest.WriteDir(t, dir, r)
	if pushed, err := s.Reload(); !pushed || err != nil || s.Version() != "2" {
		t.Errorf("changed endpoints: pushed %v, %v, version %s (want 2)", pushed, err, s.Version())
	}

	if err := os.WriteFile(filepath.Join(dir, xds.ClustersFile), []byte(`{"resources": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if pushed, err := s.Reload(); pushed || err == nil || s.Version() != "2" {
		t.Errorf("a clusters file that does not parse: pushed %v, error %v, version %s (want 2 kept)", pushed, err, s.Version())
	}
}

func TestNewRefusesAnEmptyDirectory(t *testing.T) {
	if _, err := New(t.TempDir(), nil); err == nil {
		t.Error("an empty directory was served")
	}
}

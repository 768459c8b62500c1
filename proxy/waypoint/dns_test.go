package waypoint

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/upstream/dns/dnstest"
	"github.com/gowaypoint/waypoint/xds"
)

// TestLoggedResolver: a name that stops resolving is logged once, and
// once more when it resolves again.
func TestLoggedResolver(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Set("a.example", time.Second, "127.0.0.1")
	var buf bytes.Buffer
	r := newLoggedResolver(srv.Addr(), slog.New(slog.NewTextHandler(&buf, nil)))
	lookup := func() {
		r.Lookup(context.Background(), "a.example", xds.DNSV4Only)
	}
	lookup()
	srv.Fail(true)
	lookup()
	lookup()
	srv.Fail(false)
	lookup()
	lookup()
	out := buf.String()
	if strings.Count(out, "does not resolve") != 1 || strings.Count(out, "resolves again") != 1 {
		t.Errorf("log:\n%s", out)
	}
}

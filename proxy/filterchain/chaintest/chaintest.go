// Package chaintest builds a filterchain.Server for the tests of the
// entries that use one (proxy/inbound, proxy/listener): the config from a
// bootstrap's YAML, clusters dialled as the waypoint dials them (plain TCP
// for raw_buffer clusters), quiet connection managers without telemetry.
package chaintest

import (
	"log/slog"
	"testing"

	_ "github.com/gowaypoint/waypoint/filters/all" // the built-in filters the configs name
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/filterchain"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/tcpproxy"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/xds"
)

// Server returns a Server serving the static config of yaml (a bootstrap),
// and that config. Its clusters are closed when the test ends.
func Server(t testing.TB, yaml string) (*filterchain.Server, *xds.Snapshot) {
	t.Helper()
	bs, err := xds.ParseBootstrap([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cl := upstream.NewClusters(upstream.NewDialer(nil, nil))
	cl.Update(bs.Snapshot)
	t.Cleanup(cl.Close)
	s := &filterchain.Server{
		Store: new(xds.Store), Clusters: cl, Log: log,
		HTTP:  &httpconn.Env{Log: log},
		Dubbo: &dubboconn.Env{Log: log},
		TCP:   &tcpproxy.Proxy{Clusters: cl, Log: log},
	}
	s.Store.Store(bs.Snapshot)
	return s, bs.Snapshot
}

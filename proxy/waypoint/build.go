package waypoint

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/telemetry/stats"
	"github.com/gowaypoint/waypoint/xds"
)

// buildOptions are what the waypoint builds every snapshot with, from the
// file or over ADS: its filters count on the process's registry (served at
// /stats/prometheus), log with the waypoint's logger and call out through
// its cluster manager.
func (w *Waypoint) buildOptions() xds.BuildOptions {
	return xds.BuildOptions{Registry: stats.Registry, Logger: w.log, Upstream: &w.filterUpstream}
}

// filterUpstream is the filters.Upstream of filters that call out on their
// own (filters.BuildContext.Upstream): each call goes to the clusters of
// the config in force when it is made. The first config is built before
// the cluster manager exists; until both are there a call fails with
// NoCluster. Safe for concurrent use.
type filterUpstream struct {
	clusters atomic.Pointer[upstream.Clusters]
	store    *xds.Store
}

// RoundTrip implements filters.Upstream.
func (u *filterUpstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	c := u.clusters.Load()
	var snap *xds.Snapshot
	if u.store != nil {
		snap = u.store.Load()
	}
	if c == nil || snap == nil {
		return nil, status.New(status.NoCluster, fmt.Errorf("cluster %q: no config in force yet", req.Cluster))
	}
	return c.HTTP(snap).RoundTrip(ctx, req)
}

package upstream

import (
	"context"
	"errors"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/xds"
)

// h2Pool multiplexes requests to one endpoint of one cluster over HTTP/2
// connections.
type h2Pool struct{}

func (p *h2Pool) roundTrip(ctx context.Context, cs *Clusters, cl *xds.Cluster, pk *pick, req *l7.Request) (*l7.Response, error) {
	return nil, status.New(status.ConnectFailure, errors.New("HTTP/2 upstream pool: not built yet"))
}

// Close closes the pool's connections.
func (p *h2Pool) Close() error { return nil }

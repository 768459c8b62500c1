// Package clustergrpc makes the gRPC clients telemetry sends through a
// cluster of the config (a tracing collector, an OpenTelemetry logs
// collector, an access log service), as Envoy's envoy_grpc does: the
// target names no address, every connection is dialled to the cluster.
package clustergrpc

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Dial opens one connection to an endpoint of the named cluster.
type Dial func(ctx context.Context, cluster string) (net.Conn, error)

// NewClient returns a client whose connections dial reaches cluster, with
// authority as the requests' :authority. Plaintext: the cluster's own
// transport (HBONE, TLS) is dial's. The caller closes it.
func NewClient(authority, cluster string, dial Dial) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, cluster) }))
}

package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// adsFlagSet are run's xDS flags.
type adsFlagSet struct {
	addr, ip, pod, ns, sa, cluster *string
	delta                          *bool
}

func adsFlags(fs *flag.FlagSet) adsFlagSet {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	return adsFlagSet{
		addr:    fs.String("xds", "", "xDS server (ADS over plaintext gRPC) to take the config from, instead of --config"),
		delta:   fs.Bool("xds-delta", false, "use incremental (delta) ADS"),
		ip:      fs.String("node-ip", env("INSTANCE_IP", "127.0.0.5"), "the waypoint's IP in its node id"),
		pod:     fs.String("node-pod", env("POD_NAME", "waypoint"), "the pod name in the node id"),
		ns:      fs.String("node-namespace", env("POD_NAMESPACE", "default"), "the namespace in the node id"),
		sa:      fs.String("node-service-account", env("SERVICE_ACCOUNT", "waypoint"), "SERVICE_ACCOUNT node metadata"),
		cluster: fs.String("node-cluster-id", env("ISTIO_META_CLUSTER_ID", "Kubernetes"), "CLUSTER_ID node metadata"),
	}
}

func (f adsFlagSet) options() (*waypoint.ADSOptions, func(), error) {
	conn, err := grpc.NewClient(*f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	node := adsclient.NodeConfig{IP: *f.ip, PodName: *f.pod, Namespace: *f.ns, ServiceAccount: *f.sa,
		ClusterID: *f.cluster, Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}}.Node()
	return &waypoint.ADSOptions{Client: adsclient.Config{Conn: conn, Node: node, Delta: *f.delta}}, func() { conn.Close() }, nil
}

// xdsCommand runs `waypoint xds serve`.
func xdsCommand(args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("xds: usage: waypoint xds serve --dir DIR [--addr 127.0.0.1:15010]")
	}
	fs := flag.NewFlagSet("xds serve", flag.ExitOnError)
	dir := fs.String("dir", "", "directory of listeners.json, clusters.json, endpoints.json, routes.json (required); re-read when they change")
	addr := fs.String("addr", "127.0.0.1:15010", "gRPC listen address")
	logger := cli.LogFlags(fs)
	fs.Parse(args[1:])
	if *dir == "" {
		return fmt.Errorf("xds serve: --dir is required")
	}
	log, err := logger()
	if err != nil {
		return err
	}
	srv, err := xdsserver.New(*dir, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx := cli.Signals(context.Background(), nil)
	go srv.Watch(ctx, 0)
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("xds server listening", "addr", ln.Addr().String(), "dir", strings.TrimSpace(*dir), "version", srv.Version())
	return srv.Serve(ln)
}

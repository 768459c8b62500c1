package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/istiod"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// adsFlagSet are run's xDS flags.
type adsFlagSet struct {
	addr, ip, pod, ns, sa, cluster *string
	rootCert, serverName, token    *string
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
		addr:       fs.String("xds", "", "xDS server (ADS over gRPC) to take the config from, instead of --config; e.g. "+istiod.DefaultAddr),
		delta:      fs.Bool("xds-delta", false, "use incremental (delta) ADS"),
		rootCert:   fs.String("xds-root-cert", "", "with --xds: talk TLS to the xDS server, verified against this root (istiod's: "+istiod.DefaultRootCertFile+"); plaintext when empty"),
		serverName: fs.String("xds-server-name", istiod.DefaultServerName, "with --xds-root-cert: the name the xDS server's certificate is checked against"),
		token:      fs.String("xds-token-file", "", "service account token sent to the xDS server on every call, over TLS only (istiod's: "+istiod.DefaultTokenFile+")"),
		ip:         fs.String("node-ip", env("INSTANCE_IP", "127.0.0.5"), "the waypoint's IP in its node id"),
		pod:        fs.String("node-pod", env("POD_NAME", "waypoint"), "the pod name in the node id"),
		ns:         fs.String("node-namespace", env("POD_NAMESPACE", "default"), "the namespace in the node id"),
		sa:         fs.String("node-service-account", env("SERVICE_ACCOUNT", "waypoint"), "SERVICE_ACCOUNT node metadata"),
		cluster:    fs.String("node-cluster-id", env("ISTIO_META_CLUSTER_ID", "Kubernetes"), "CLUSTER_ID node metadata"),
	}
}

// node is the xDS node of the flags.
func (f adsFlagSet) node() *corev3.Node {
	return adsclient.NodeConfig{IP: *f.ip, PodName: *f.pod, Namespace: *f.ns, ServiceAccount: *f.sa,
		ClusterID: *f.cluster, Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}}.Node()
}

// options are the ADS options of --xds.
func (f adsFlagSet) options() (*waypoint.ADSOptions, func(), error) {
	cp := xds.ControlPlane{Target: *f.addr}
	if *f.rootCert != "" {
		cp.TLS = &xds.ControlPlaneTLS{RootCAFile: *f.rootCert, ServerName: *f.serverName}
	}
	conn, err := istiod.Dial(istiod.DialConfig{ControlPlane: cp, TokenFile: *f.token})
	if err != nil {
		return nil, nil, err
	}
	return &waypoint.ADSOptions{Client: adsclient.Config{Conn: conn, Node: f.node(), Delta: *f.delta}}, func() { conn.Close() }, nil
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

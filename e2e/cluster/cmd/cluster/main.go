// Command cluster builds (once) and runs the local control plane on a loopback address:
// etcd, kube-apiserver with the Gateway API's and Istio's CRDs, and istiod with ambient on,
// its CA being the mesh CA of `waypoint certs`. It prints how to use it and runs until
// Ctrl-C (SIGINT or SIGTERM), then stops everything.
//
//	go run ./cmd/cluster [-ip 127.20.0.1] [-bin DIR] [-dir DIR] [-mesh-ca DIR] [-build-only]
//
// `make cluster` runs it from the repository's top.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/e2e/cluster"
)

func main() {
	top := filepath.Join(cluster.SourceDir(), "..", "..")
	ip := flag.String("ip", cluster.DefaultIP, "the loopback address every server listens on")
	bin := flag.String("bin", cluster.DefaultBinDir(), "where the control plane's binaries are built and cached")
	dir := flag.String("dir", filepath.Join(top, "bin", "cluster-run"), "the cluster's state and logs (emptied at start)")
	meshCA := flag.String("mesh-ca", filepath.Join(top, "bin", "mesh-ca"), "the mesh CA (made with `waypoint certs` when missing)")
	buildOnly := flag.Bool("build-only", false, "build the binaries (or find them built) and exit")
	flag.Parse()
	if *buildOnly {
		start := time.Now()
		if _, err := cluster.Build(context.Background(), *bin, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "cluster: binaries ready in %s (%.0fs)\n", *bin, time.Since(start).Seconds())
		return
	}
	if err := run(*ip, *bin, *dir, *meshCA, top); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ip, bin, dir, meshCA, top string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	bins, err := cluster.Build(ctx, bin, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster: binaries ready in %s (%.0fs)\n", bin, time.Since(start).Seconds())
	if err := ensureMeshCA(ctx, top, meshCA); err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Config{Bins: bins, Dir: dir, IP: ip, MeshCA: meshCA, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf(`
The local control plane is up (%.0fs): Kubernetes %s, istiod %s (istio.io/istio %s).

  kubeconfig        %s
  API server        %s (admin token in the kubeconfig)
  istiod xDS + CA   %s over TLS, server name %s, root %s
  istiod debug      %s/debug/syncz, /debug/config_dump?proxyID=POD.NS, /debug/ambientz
  logs              %s/{etcd,kube-apiserver,istiod}.log
  istioctl          %s (proxy-config reads a waypoint's admin dump: --file)

A waypoint for a Gateway "waypoint" in namespace NS (see docs/istio-compat.md):

  waypoint run --xds %s --xds-root-cert %s --ca-addr %s \
    --xds-token-file TOKEN_FILE --node-namespace NS --node-service-account waypoint \
    --node-label gateway.networking.k8s.io/gateway-name=waypoint

Ctrl-C stops everything.
`, time.Since(start).Seconds(), cluster.KubernetesVersion, bins.IstioVersion, bins.IstioModuleRef,
		c.Kubeconfig, c.APIServer, c.IstiodXDS(), cluster.IstiodServerName, c.IstiodRootCert(),
		c.IstiodMonitoring(), dir, bins.Istioctl, c.IstiodXDS(), c.IstiodRootCert(), c.IstiodXDS())
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "cluster: stopping")
	return nil
}

// ensureMeshCA makes the mesh CA with the waypoint's own `certs` command when dir has none.
func ensureMeshCA(ctx context.Context, top, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "root-key.pem")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/waypoint", "certs", "--out", dir, "istio-system/istiod")
	cmd.Dir, cmd.Stdout, cmd.Stderr = top, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: make the mesh CA: %w", err)
	}
	return nil
}

// Package live runs the waypoint under a live istiod: a local API server and istiod (package
// cluster), Istio resources applied through the API server, the waypoint binary taking its
// config and certificate from istiod, and traffic from test sources through it to pods.
//
// Addresses: the control plane listens on 127.30.0.1; a test world k has 127.30.k.0/24 (the
// waypoint at .5, pods from .11, each pod's ztunnel stand-in on its own :15008). LIVE_NET=127.N
// moves all of it to 127.N.0.0/16, so that two runs of the package can share a machine.
package live

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/e2e/cluster"
)

// The environment every test of the package shares.
var env struct {
	cluster    *cluster.Cluster
	bins       *cluster.Bins
	meshCA     string // the mesh CA: root-cert.pem, root-key.pem, and identities under it
	waypoint   string // the waypoint binary
	hbone      string // the ztunnel stand-in binary
	dubbo      string // dubbotool: a Dubbo provider and consumer (dubbo_test.go)
	controller string // the waypoint-controller binary (mode B's Gateway controller)
}

// liveNet is the /16 of the package's addresses (LIVE_NET, default 127.30).
var liveNet = func() string {
	if n := os.Getenv("LIVE_NET"); n != "" {
		return n
	}
	return "127.30"
}()

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "waypoint-live-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	start := time.Now()
	if err := setup(ctx, tmp); err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		if env.cluster != nil {
			env.cluster.Stop()
		}
		keep = true
		fmt.Fprintln(os.Stderr, "live: logs kept in", tmp)
		return 1
	}
	fmt.Fprintf(os.Stderr, "live: control plane up in %.0fs\n", time.Since(start).Seconds())
	code := m.Run()
	env.cluster.Stop()
	if code != 0 {
		keep = true
		fmt.Fprintln(os.Stderr, "live: logs kept in", tmp)
	}
	return code
}

func setup(ctx context.Context, tmp string) error {
	top := filepath.Join(cluster.SourceDir(), "..", "..")
	bins, err := cluster.Build(ctx, cluster.DefaultBinDir(), os.Stderr)
	if err != nil {
		return err
	}
	env.bins = bins
	binDir := filepath.Join(tmp, "bin")
	build := exec.CommandContext(ctx, "go", "build", "-o", binDir+"/", "./cmd/waypoint", "./cmd/hbone", "./proxy/dubboconn/dubbotest/dubbotool",
		"./cmd/waypoint-controller")
	build.Dir, build.Stdout, build.Stderr = top, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the waypoint: %w", err)
	}
	env.waypoint, env.hbone = filepath.Join(binDir, "waypoint"), filepath.Join(binDir, "hbone")
	env.dubbo = filepath.Join(binDir, "dubbotool")
	env.controller = filepath.Join(binDir, "waypoint-controller")
	env.meshCA = filepath.Join(tmp, "mesh")
	if out, err := exec.CommandContext(ctx, env.waypoint, "certs", "--out", env.meshCA, "istio-system/istiod").CombinedOutput(); err != nil {
		return fmt.Errorf("waypoint certs: %v: %s", err, out)
	}
	env.cluster, err = cluster.Start(ctx, cluster.Config{Bins: bins, Dir: filepath.Join(tmp, "cluster"), IP: liveNet + ".0.1",
		MeshCA: env.meshCA, Log: os.Stderr})
	return err
}

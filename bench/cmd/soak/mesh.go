package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// The soak's fixed addresses, all in 127.79.0.0/16; the pods take
// 127.79.0.1 up (podAddr).
const (
	entryIP    = "127.79.255.1" // the source ztunnel's listener
	waypointIP = "127.79.255.2" // HBONE :15008, admin :15000
	xdsIP      = "127.79.255.3"
	podPort    = 8080
	// authority is the destination the source ztunnel asks for: a service
	// VIP, as ztunnel sends a request for a service to its waypoint.
	authority = "127.79.254.1:80"
)

var (
	idWaypoint = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "waypoint"}
	idClient   = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "client"}
	idPod      = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "pod"}
)

// soak is one run: what it started, in order, to stop in reverse.
type soak struct {
	o     options
	dir   string
	log   *slog.Logger
	stops []func()
	wg    sync.WaitGroup // goroutines of the servers

	xds     *xdsserver.Server
	xdsAddr string
	pods    *pods
	wp      *waypointProc
	entry   string // the source ztunnel's address
}

func (s *soak) goServe(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	s := &soak{o: o, dir: dir, log: slog.New(slog.DiscardHandler)}
	keep := o.keep
	defer func() {
		for i := len(s.stops) - 1; i >= 0; i-- {
			s.stops[i]()
		}
		s.wg.Wait()
		if keep || err != nil {
			fmt.Fprintln(out, "files (the waypoint's log and access log) in", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{idWaypoint, idClient, idPod}}); err != nil {
		return err
	}
	if s.pods, err = newPods(dir, 0, podSlots(o)); err != nil {
		return err
	}
	s.stops = append(s.stops, s.pods.close)
	if err := s.startXDS(); err != nil {
		return err
	}
	if s.wp, err = s.startWaypoint(ctx); err != nil {
		return err
	}
	if s.entry, err = s.startEntry(); err != nil {
		return err
	}
	if err := waitReady(ctx, s.entry); err != nil {
		return fmt.Errorf("waypoint not serving: %w (its log: %s)", err, filepath.Join(dir, "waypoint.log"))
	}
	return s.soak(ctx, out)
}

func (s *soak) xdsDir() string        { return filepath.Join(s.dir, "xds") }
func (s *soak) accessLogPath() string { return filepath.Join(s.dir, "access.log") }

// startXDS starts the first -endpoints pods and serves config a with them.
func (s *soak) startXDS() error {
	if err := os.MkdirAll(s.xdsDir(), 0o755); err != nil {
		return err
	}
	for range s.o.endpoints {
		if _, err := s.pods.start(); err != nil {
			return err
		}
	}
	if err := s.writeConfig(0); err != nil {
		return err
	}
	if err := s.writeEndpoints(); err != nil {
		return err
	}
	srv, err := xdsserver.New(s.xdsDir(), s.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", xdsIP+":0")
	if err != nil {
		return err
	}
	s.xds, s.xdsAddr = srv, ln.Addr().String()
	s.goServe(func() { srv.Serve(ln) })
	s.stops = append(s.stops, srv.Close)
	return nil
}

// writeConfig writes version v (0: a, 1: b) of the listener and clusters.
func (s *soak) writeConfig(v int) error {
	if err := os.WriteFile(filepath.Join(s.xdsDir(), xds.ListenersFile), []byte(listenersJSON(v, s.accessLogPath())), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.xdsDir(), xds.ClustersFile), []byte(clustersJSON(v)), 0o644)
}

// writeEndpoints writes the live pods as both clusters' endpoints.
func (s *soak) writeEndpoints() error {
	return os.WriteFile(filepath.Join(s.xdsDir(), xds.EndpointsFile), []byte(endpointsJSON(s.pods.liveAddrs())), 0o644)
}

// push serves what the files hold as a new version.
func (s *soak) push() error {
	pushed, err := s.xds.Reload()
	if err == nil && !pushed {
		err = fmt.Errorf("nothing changed in %s", s.xdsDir())
	}
	return err
}

// waypointProc is the waypoint process.
type waypointProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited is closed
}

func (s *soak) startWaypoint(ctx context.Context) (*waypointProc, error) {
	bin := s.o.waypoint
	if bin == "" {
		bin = filepath.Join(s.dir, "waypoint")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/waypoint")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("building ./cmd/waypoint (run from the repository root, or give -waypoint): %w", err)
		}
	}
	logf, err := os.Create(filepath.Join(s.dir, "waypoint.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--xds", s.xdsAddr, "--cert-dir", certs.IdentityDir(s.dir, idWaypoint),
		"--hbone-addr", waypointIP + ":15008", "--admin-addr", waypointIP + ":15000", "--metrics-addr", "off"}
	if s.o.delta {
		args = append(args, "--xds-delta")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	wp := &waypointProc{cmd: cmd, exited: make(chan struct{})}
	s.goServe(func() {
		wp.err = cmd.Wait()
		logf.Close()
		close(wp.exited)
	})
	s.stops = append(s.stops, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-wp.exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-wp.exited
		}
	})
	return wp, nil
}

// startEntry starts the source ztunnel: plaintext TCP on entryIP, each
// connection an HBONE CONNECT to the waypoint.
func (s *soak) startEntry() (string, error) {
	src, err := certs.NewSource(certs.IdentityDir(s.dir, idClient), certs.SourceOptions{Logger: s.log})
	if err != nil {
		return "", err
	}
	s.stops = append(s.stops, func() { src.Close() })
	pool := hbone.NewPool(hbone.PoolConfig{Logger: s.log})
	s.stops = append(s.stops, pool.Close)
	expect := certs.PeerExpectation{ID: idWaypoint}
	ln, err := net.Listen("tcp", entryIP+":0")
	if err != nil {
		return "", err
	}
	zs := &ztunnel.Source{Pool: pool, Via: netip.MustParseAddrPort(waypointIP + ":15008"), Authority: authority,
		PeerKey: expect.ID.String(), TLS: src.ClientTLSConfig(expect), Log: s.log}
	s.goServe(func() { zs.Serve(ln) })
	s.stops = append(s.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		zs.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}

// waitReady waits until a request through the waypoint succeeds.
func waitReady(ctx context.Context, entry string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + entry + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return last
}

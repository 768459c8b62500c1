// Command loadtest is the waypoint's load harness: it starts one backend,
// puts each proxy (the waypoint, nginx, HAProxy, Caddy) in front of it for
// the same job, loads them on loopback (127.0.40.0/24 only) and reports
// each proxy's own CPU per request, latency percentiles, errors and memory,
// with medians over interleaved rounds and the ratios to nginx last. The
// waypoint takes part once per -gomaxprocs value (1, 2 and unset by
// default), each a proxy of its own.
//
//	go run ./bench/cmd/loadtest [flags]      (make loadtest installs what it needs first)
//	go run ./bench/cmd/loadtest -scenarios http1 -proxies waypoint,nginx -quick
//
// Scenarios: plaintext HTTP/1.1 at a fixed rate and closed loop, h2c, gRPC
// unary, the full waypoint path over HBONE (HTTP/1.1 and gRPC, against a
// TLS-terminating nginx chain), bulk TCP through HBONE and idle HBONE
// streams. See bench/README.md ("Load tests") for what each measures.
//
// Ownership: the harness owns every process it starts (supervisor.go):
// each is stopped when the harness ends, errs or is interrupted (SIGINT,
// SIGTERM, SIGHUP), and gets SIGKILL from the kernel should the harness
// die first. Its own goroutines (the sink and echo backends, the bulk and
// idle clients, one waiter per process) end before it exits.
//
// Why by hand: fortio generates the HTTP and gRPC load and reports
// latency, but no load tool reads a proxy's CPU from /proc per window or
// drives HBONE streams by the ten thousand, so those parts are here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/bench/internal/hostinfo"
)

func main() {
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	useNet(o.net)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err = run(ctx, o)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			err = fmt.Errorf("interrupted; every process it started is stopped")
		}
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (err error) {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := checkFree(o); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "waypoint-loadtest-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "loadtest: work directory (configs, process logs, fortio JSON) kept in %s\n", work)
			return
		}
		os.RemoveAll(work)
	}()
	for _, d := range []string{"logs", "fortio", "certs"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	nofile := hostinfo.RaiseNoFile()
	t, err := findTools(o, root, work)
	if err != nil {
		return err
	}
	sup := newSupervisor(filepath.Join(work, "logs"))
	defer sup.stopAll(2 * time.Second)
	r := &runner{o: o, tools: t, sup: sup, work: work, certs: filepath.Join(work, "certs"),
		templates: filepath.Join(root, "bench", "loadtest"), nofile: nofile}
	defer r.close()
	if err := writeCerts(t, r.certs); err != nil {
		return err
	}
	m := readMachine(t)
	started := time.Now()
	fmt.Printf("load test: %s\n%s\n", strings.Join(os.Args, " "), m.describe())
	if err := r.run(ctx); err != nil {
		return err
	}
	sup.stopAll(2 * time.Second)
	m.loadEnd = hostinfo.LoadAverage(1)
	return r.report(root, m, started)
}

// checkFree fails when a previous run (or anything else) still listens on
// one of the harness's addresses.
func checkFree(o *options) error {
	addrs := []string{
		hostPort(ipBackend, portHTTP), hostPort(ipBackend, portGRPC),
		hostPort(ipPod, portHTTP), hostPort(ipPod, portGRPC), hostPort(ipPod, portSink), hostPort(ipPod, portEcho),
		hostPort(ipPod, portHBONE), hostPort(ipPod, portTLSHTTP), hostPort(ipPod, portTLSGRPC),
		hostPort(ipNginxMiddle, portTLSHTTP), hostPort(ipNginxMiddle, portTLSGRPC),
		hostPort(ipNginxSource, portSrcHTTP), hostPort(ipNginxSource, portSrcGRPC),
	}
	for _, v := range o.variants {
		ip, src := waypointIP(v.index), sourceIP(v.index)
		addrs = append(addrs, hostPort(ip, portHBONE), hostPort(ip, portAdmin),
			hostPort(src, portSrcHTTP), hostPort(src, portSrcGRPC), hostPort(src, portSrcBulk), hostPort(src, portSrcIdle))
	}
	for _, ip := range []string{ipNginx, ipHAProxy, ipCaddy} {
		for _, port := range plaintextPorts {
			addrs = append(addrs, hostPort(ip, port))
		}
	}
	for _, v := range o.variants {
		for _, port := range plaintextPorts {
			addrs = append(addrs, hostPort(waypointIP(v.index), port))
		}
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is in use, and the harness needs it (a process left by an earlier run? see ss -ltnp): %w", a, err)
		}
		ln.Close()
	}
	return nil
}

// checkH2C asks nghttp (Debian's nghttp2-client) for one request by prior
// knowledge, to be sure the h2c listener speaks HTTP/2 and not HTTP/1.1.
func (r *runner) checkH2C(ctx context.Context, s scenario, proxy string) {
	if r.tools.nghttp == "" {
		r.problem("h2c/%s: nghttp not installed (Debian's nghttp2-client), HTTP/2 by prior knowledge not checked", proxy)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/echo?size=16", hostPort(r.o.proxyIP(proxy), portProxyH2C))
	cmd := exec.CommandContext(ctx, r.tools.nghttp, "-nv", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ":status: 200") {
		r.problem("h2c/%s: nghttp -nv %s did not get a 200 over HTTP/2 (%v):\n%s", proxy, url, err, tail(string(out), 10))
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

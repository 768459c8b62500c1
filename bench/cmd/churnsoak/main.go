// Command churnsoak checks that the waypoint's memory and goroutines stay
// flat under endpoint churn: it runs the real waypoint binary, configured
// over ADS by an in-process xDS server, in front of pods on loopback
// (127.78.0.0/16 only), each an HTTP backend behind its own ztunnel
// (HBONE with mTLS), loads it through a source ztunnel, and replaces every
// endpoint of its clusters every second by an EDS push. Every few seconds
// it samples the waypoint's RSS (/proc/PID/status) and goroutine count
// (the admin's /debug/pprof/goroutine) and prints a row; at the end it
// prints the figures at start, the range after the warm-up and at the end.
//
//	go run ./bench/cmd/churnsoak                    (1 minute)
//	go run ./bench/cmd/churnsoak -duration 10m      (the soak of issue 12)
//
// Run it from the repository root: it builds ./cmd/waypoint unless
// -waypoint names a binary. The config: listener main_internal (where
// HBONE streams enter) routes /h2... to cluster churn-h2 (HTTP/2 to the
// pods) and everything else to churn (HTTP/1.1); both are EDS clusters
// over HBONE with the same endpoints, so each pod's HBONE key is held by
// two clusters. The pods are 10 blocks of -endpoints addresses, all
// listening from the start; each second the endpoints move to the next
// block, so every endpoint of the previous second leaves and a block comes
// back only after it has been out for 9 s: each second -endpoints hosts
// leave the waypoint's balancers and as many new ones arrive.
//
// Ownership: the tool owns the waypoint process (stopped with SIGTERM at
// the end, killed by the kernel should the tool die first) and its own
// goroutines (servers, load workers, the churn loop), which end before it
// exits. Exit status 1 when the load saw errors or the waypoint failed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// The soak's addresses, all in 127.78.0.0/16.
const (
	waypointIP = "127.78.255.2" // HBONE :15008, admin :15000
	xdsIP      = "127.78.255.3"
	entryIP    = "127.78.255.1" // the source ztunnel's listener
	blocks     = 10
	podPort    = 8080
)

// podIP is endpoint i of block b.
func podIP(b, i int) string { return fmt.Sprintf("127.78.%d.%d", b, i+1) }

type options struct {
	duration, warmup, every, sample time.Duration
	endpoints, workers              int
	waypoint                        string
	keep                            bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", time.Minute, "how long to run under load and churn")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "samples before this are not in the min/max")
	flag.DurationVar(&o.every, "replace-every", time.Second, "how often every endpoint is replaced")
	flag.DurationVar(&o.sample, "sample-every", 5*time.Second, "how often RSS and goroutines are sampled")
	flag.IntVar(&o.endpoints, "endpoints", 100, "endpoints of the clusters at any time (at most 250)")
	flag.IntVar(&o.workers, "workers", 16, "concurrent keep-alive clients")
	flag.StringVar(&o.waypoint, "waypoint", "", "the waypoint binary (default: go build ./cmd/waypoint)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (certificates, config, the waypoint's log)")
	flag.Parse()
	if o.endpoints < 1 || o.endpoints > 250 {
		fmt.Fprintln(os.Stderr, "churnsoak: -endpoints must be 1..250")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "churnsoak:", err)
		os.Exit(1)
	}
}

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
	xdsAddr string // where it listens
}

func (s *soak) goServe(f func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "churnsoak-")
	if err != nil {
		return err
	}
	s := &soak{o: o, dir: dir, log: slog.New(slog.DiscardHandler)}
	defer func() {
		for i := len(s.stops) - 1; i >= 0; i-- {
			s.stops[i]()
		}
		s.wg.Wait()
		if o.keep {
			fmt.Fprintln(out, "files in", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{idWaypoint, idClient, idPod}}); err != nil {
		return err
	}
	if err := s.startPods(); err != nil {
		return err
	}
	if err := s.startXDS(); err != nil {
		return err
	}
	wp, err := s.startWaypoint(ctx)
	if err != nil {
		return err
	}
	entry, err := s.startEntry()
	if err != nil {
		return err
	}
	if err := waitReady(ctx, entry); err != nil {
		return fmt.Errorf("waypoint not serving: %w (its log: %s)", err, filepath.Join(dir, "waypoint.log"))
	}
	return s.soak(ctx, wp, entry, out)
}

// startPods starts every block's pods: one HTTP server and one ztunnel
// (an HBONE server presenting the pods' identity), listening on each pod
// address.
func (s *soak) startPods() error {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	backend.Protocols = new(http.Protocols)
	backend.Protocols.SetHTTP1(true)
	backend.Protocols.SetUnencryptedHTTP2(true)
	s.stops = append(s.stops, func() { backend.Close() })
	src, err := certs.NewSource(certs.IdentityDir(s.dir, idPod), certs.SourceOptions{Logger: s.log})
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() { src.Close() })
	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: src.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{Log: s.log}, Logger: s.log})
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		zt.Shutdown(ctx)
	})
	for b := range blocks {
		for i := range s.o.endpoints {
			ln, err := net.Listen("tcp", net.JoinHostPort(podIP(b, i), strconv.Itoa(podPort)))
			if err != nil {
				return err
			}
			s.goServe(func() { backend.Serve(ln) })
			zln, err := net.Listen("tcp", net.JoinHostPort(podIP(b, i), "15008"))
			if err != nil {
				return err
			}
			s.goServe(func() { zt.Serve(zln) })
		}
	}
	return nil
}

// The waypoint's config. Both clusters are EDS over ADS, over HBONE (no
// transport_socket), with istiod's 10 s connect timeout; routes retry as
// istiod's default retry policy does.
const (
	listenersJSON = `{"resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "main_internal", "internalListener": {},
 "filterChains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {
  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "statPrefix": "churn",
  "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
  "routeConfig": {"virtualHosts": [{"name": "churn", "domains": ["*"], "routes": [
   {"match": {"prefix": "/h2"}, "route": {"cluster": "churn-h2", "retryPolicy": {"retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "retriableStatusCodes": [503], "numRetries": 2}}},
   {"match": {"prefix": "/"}, "route": {"cluster": "churn", "retryPolicy": {"retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "retriableStatusCodes": [503], "numRetries": 2}}}]}]}}}]}]}]}`
	clustersJSON = `{"resources": [
 {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "churn", "type": "EDS", "connectTimeout": "10s",
  "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}}},
 {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "churn-h2", "type": "EDS", "connectTimeout": "10s",
  "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}},
  "typedExtensionProtocolOptions": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
   "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicitHttpConfig": {"http2ProtocolOptions": {}}}}}]}`
)

// endpointsJSON is the EDS of both clusters: the pods of block b.
func endpointsJSON(b, n int) string {
	var eps strings.Builder
	for i := range n {
		if i > 0 {
			eps.WriteString(",")
		}
		fmt.Fprintf(&eps, `{"endpoint": {"address": {"socketAddress": {"address": %q, "portValue": %d}}}}`, podIP(b, i), podPort)
	}
	cla := func(name string) string {
		return fmt.Sprintf(`{"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "clusterName": %q, "endpoints": [{"lbEndpoints": [%s]}]}`, name, eps.String())
	}
	return `{"resources": [` + cla("churn") + "," + cla("churn-h2") + "]}"
}

func (s *soak) xdsDir() string { return filepath.Join(s.dir, "xds") }

// startXDS serves the config over ADS, with block 0's endpoints.
func (s *soak) startXDS() error {
	dir := s.xdsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string]string{xds.ListenersFile: listenersJSON, xds.ClustersFile: clustersJSON, xds.EndpointsFile: endpointsJSON(0, s.o.endpoints)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	srv, err := xdsserver.New(dir, s.log)
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

// push makes block b's pods the endpoints of both clusters.
func (s *soak) push(b int) error {
	if err := os.WriteFile(filepath.Join(s.xdsDir(), xds.EndpointsFile), []byte(endpointsJSON(b, s.o.endpoints)), 0o644); err != nil {
		return err
	}
	_, err := s.xds.Reload()
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
	cmd := exec.Command(bin, "run", "--xds", s.xdsAddr, "--cert-dir", certs.IdentityDir(s.dir, idWaypoint),
		"--hbone-addr", waypointIP+":15008", "--admin-addr", waypointIP+":15000", "--metrics-addr", "off")
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
	zs := &ztunnel.Source{Pool: pool, Via: netip.MustParseAddrPort(waypointIP + ":15008"), Authority: "127.78.250.1:80",
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

// sample is one row of the table.
type sample struct {
	at         time.Duration
	rssKiB     int64
	goroutines int
	requests   int64 // in the interval
	errors     int64 // in the interval
}

func (s *soak) soak(ctx context.Context, wp *waypointProc, entry string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.duration)
	defer cancel()
	var requests, failures atomic.Int64
	var reasonsMu sync.Mutex
	reasons := map[string]int{} // failure message -> count
	var work sync.WaitGroup
	for w := range s.o.workers {
		work.Add(1)
		go func() {
			defer work.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			path := "/"
			if w%2 == 1 {
				path = "/h2"
			}
			for ctx.Err() == nil {
				resp, err := client.Get("http://" + entry + path)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%s: status %d: %q", path, resp.StatusCode, body)
					}
				}
				if err != nil && ctx.Err() == nil {
					failures.Add(1)
					reasonsMu.Lock()
					reasons[err.Error()]++
					reasonsMu.Unlock()
					continue
				}
				requests.Add(1)
			}
		}()
	}
	churnErr := make(chan error, 1)
	work.Add(1)
	go func() {
		defer work.Done()
		t := time.NewTicker(s.o.every)
		defer t.Stop()
		for b := 1; ; b++ {
			select {
			case <-ctx.Done():
				churnErr <- nil
				return
			case <-t.C:
			}
			if err := s.push(b % blocks); err != nil {
				churnErr <- err
				return
			}
		}
	}()

	fmt.Fprintf(out, "churnsoak: %d endpoints replaced every %v, %d clients, for %v (samples every %v, warm-up %v)\n",
		s.o.endpoints, s.o.every, s.o.workers, s.o.duration, s.o.sample, s.o.warmup)
	fmt.Fprintf(out, "%8s %10s %11s %9s %7s\n", "t", "RSS MiB", "goroutines", "req/s", "errors")
	start := time.Now()
	var rows []sample
	var prevReq, prevErr int64
	take := func() error {
		rss, err := rssKiB(wp.cmd.Process.Pid)
		if err != nil {
			return err
		}
		g, err := goroutines(waypointIP + ":15000")
		if err != nil {
			return err
		}
		r, e := requests.Load(), failures.Load()
		row := sample{at: time.Since(start).Round(time.Second), rssKiB: rss, goroutines: g, requests: r - prevReq, errors: e - prevErr}
		prevReq, prevErr = r, e
		rows = append(rows, row)
		rate := 0.0
		if len(rows) > 1 {
			rate = float64(row.requests) / s.o.sample.Seconds()
		}
		fmt.Fprintf(out, "%8v %10.1f %11d %9.0f %7d\n", row.at, float64(rss)/1024, g, rate, row.errors)
		return nil
	}
	var failed error
	if err := take(); err != nil {
		failed = err
	}
	tick := time.NewTicker(s.o.sample)
loop:
	for failed == nil {
		select {
		case <-ctx.Done():
			break loop
		case <-wp.exited:
			failed = fmt.Errorf("the waypoint exited: %v (its log: %s)", wp.err, filepath.Join(s.dir, "waypoint.log"))
		case <-tick.C:
			if err := take(); err != nil {
				failed = err
			}
		}
	}
	tick.Stop()
	cancel()
	work.Wait()
	if err := <-churnErr; err != nil && failed == nil {
		failed = fmt.Errorf("EDS push: %w", err)
	}
	if failed == nil {
		failed = take()
	}
	summarize(out, rows, s.o.warmup, requests.Load(), failures.Load())
	for msg, n := range reasons {
		fmt.Fprintf(out, "  %6d x %s\n", n, msg)
	}
	if failed != nil {
		return failed
	}
	if n := failures.Load(); n > 0 {
		return fmt.Errorf("%d requests failed", n)
	}
	return nil
}

// summarize prints RSS and goroutines at start, their range after the
// warm-up, and at the end.
func summarize(out io.Writer, rows []sample, warmup time.Duration, requests, failures int64) {
	if len(rows) == 0 {
		return
	}
	first, last := rows[0], rows[len(rows)-1]
	minR, maxR, minG, maxG := int64(-1), int64(0), -1, 0
	for _, r := range rows {
		if r.at < warmup {
			continue
		}
		if minR < 0 || r.rssKiB < minR {
			minR = r.rssKiB
		}
		maxR = max(maxR, r.rssKiB)
		if minG < 0 || r.goroutines < minG {
			minG = r.goroutines
		}
		maxG = max(maxG, r.goroutines)
	}
	fmt.Fprintf(out, "\n%-28s %10s %11s\n", "", "RSS MiB", "goroutines")
	fmt.Fprintf(out, "%-28s %10.1f %11d\n", "start", float64(first.rssKiB)/1024, first.goroutines)
	if minR >= 0 {
		fmt.Fprintf(out, "%-28s %4.1f-%5.1f %5d-%5d\n", "after warm-up (min-max)", float64(minR)/1024, float64(maxR)/1024, minG, maxG)
	}
	fmt.Fprintf(out, "%-28s %10.1f %11d\n", "end", float64(last.rssKiB)/1024, last.goroutines)
	fmt.Fprintf(out, "%d requests, %d failed\n", requests, failures)
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// goroutines reads the goroutine count from the admin's pprof index:
// its first line is "goroutine profile: total N".
func goroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts with %q", line)
	}
	io.Copy(io.Discard, resp.Body)
	return strconv.Atoi(v)
}

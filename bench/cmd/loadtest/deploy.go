package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"text/template"
	"time"
)

// readyTimeout bounds how long a started process may take to listen.
const readyTimeout = 15 * time.Second

// deployment is the processes that serve one proxy in one scenario;
// measured is the one whose CPU and memory are reported (the waypoint, not
// the hbone stand-ins; the nginx chain's middle, not its edges).
type deployment struct {
	proxy    string
	measured *process
	procs    []*process
	shared   []*process // used, not owned: the pod's hbone serve of the scenario
	source   string     // a waypoint's: the address of its hbone connect sources
}

// alive reports the first of the deployment's processes, its shared ones
// too, that has exited.
func (d *deployment) alive() error {
	for _, p := range append(slices.Clone(d.procs), d.shared...) {
		if err := p.exitError(); err != nil {
			return err
		}
	}
	return nil
}

// stop stops the deployment's processes, the last started first.
func (d *deployment) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop(2 * time.Second)
	}
}

// deploy starts and waits for what proxy needs in scenario s. On error it
// stops what it started.
func (r *runner) deploy(ctx context.Context, s scenario, proxy string) (d *deployment, err error) {
	d = &deployment{proxy: proxy}
	defer func() {
		if err != nil {
			d.stop()
			d = nil
		}
	}()
	dir := filepath.Join(r.work, s.name+"-"+proxy)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, err
	}
	v, isVariant := r.o.variant(proxy)
	switch {
	case isVariant:
		err = r.deployWaypoint(ctx, s, v, d, dir)
	case proxy == "nginx" && s.hbone:
		err = r.deployNginxChain(ctx, d, dir)
	case proxy == "nginx":
		err = r.startProxy(ctx, d, dir, "nginx", "nginx.conf.tmpl", ipNginx, nil,
			func(conf string) []string {
				return []string{"-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", conf}
			})
	case proxy == "haproxy":
		err = r.startProxy(ctx, d, dir, "haproxy", "haproxy.cfg.tmpl", ipHAProxy, nil,
			func(conf string) []string { return []string{"-db", "-f", conf} })
	case proxy == "caddy":
		err = r.startProxy(ctx, d, dir, "caddy", "Caddyfile.tmpl", ipCaddy,
			[]string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir},
			func(conf string) []string { return []string{"run", "--adapter", "caddyfile", "--config", conf} })
	default:
		err = fmt.Errorf("no deployment of %s for %s", proxy, s.name)
	}
	return d, err
}

// plaintextPorts are the listeners of every plaintext proxy.
var plaintextPorts = []int{portProxyH1, portProxyH2C, portProxyGRP}

// startProxy renders a reference proxy's config and starts it.
func (r *runner) startProxy(ctx context.Context, d *deployment, dir, name, tmpl, ip string, env []string, args func(conf string) []string) error {
	conf, err := r.render(tmpl, dir, ip)
	if err != nil {
		return err
	}
	bin := map[string]string{"nginx": r.tools.nginx, "haproxy": r.tools.haproxy, "caddy": r.tools.caddy}[name]
	p, err := r.sup.start(name+"-"+filepath.Base(dir), env, bin, args(conf)...)
	if err != nil {
		return err
	}
	d.procs = append(d.procs, p)
	d.measured = p
	for _, port := range plaintextPorts {
		if err := waitTCP(ctx, hostPort(ip, port), p); err != nil {
			return err
		}
	}
	return nil
}

// startPodServe starts the pod's hbone serve, which every waypoint
// deployment of an HBONE scenario uses (shared) while the caller owns it.
func (r *runner) startPodServe(ctx context.Context, tag string) (*process, error) {
	p, err := r.sup.start("hbone-serve-"+tag, nil, r.tools.hbone, "serve", "--listen", hostPort(ipPod, portHBONE),
		"--cert-dir", r.certDir(saPod), "--log-level", r.o.logLevel)
	if err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, hostPort(ipPod, portHBONE), p); err != nil {
		p.stop(0)
		return nil, err
	}
	return p, nil
}

// deployWaypoint starts the waypoint variant v, and for the HBONE
// scenarios the client's hbone connect after it, and the pod's hbone serve
// before it unless the scenario shares one (r.podServe).
func (r *runner) deployWaypoint(ctx context.Context, s scenario, v variant, d *deployment, dir string) error {
	ip := waypointIP(v.index)
	d.source = sourceIP(v.index)
	conf, err := r.render("waypoint.yaml.tmpl", dir, ip)
	if err != nil {
		return err
	}
	tag := filepath.Base(dir)
	switch {
	case s.hbone && r.podServe != nil:
		d.shared = append(d.shared, r.podServe)
	case s.hbone:
		p, err := r.startPodServe(ctx, tag)
		if err != nil {
			return err
		}
		d.procs = append(d.procs, p)
	}
	hboneAddr := hostPort(ip, portHBONE)
	adminAddr := hostPort(ip, portAdmin)
	// --concurrency is not given: GOMAXPROCS comes from the environment,
	// or from Go's default when v leaves it unset.
	args := append([]string{"run", "--config", conf,
		"--cert-dir", r.certDir(saWaypoint), "--hbone-addr", hboneAddr,
		"--admin-addr", adminAddr, "--drain-timeout", "1s", "--log-level", r.o.logLevel,
		// The same job as the other proxies, which keep no statistics:
		// Istio's metrics off (their cost is measured apart, bench/README.md).
		"--metrics-addr", "off", "--stats=false"}, v.flags()...)
	p, err := r.sup.start(tag, r.o.waypointEnv(v), r.tools.waypoint, args...)
	if err != nil {
		return err
	}
	d.procs = append(d.procs, p)
	d.measured = p
	if err := waitHTTP(ctx, "http://"+adminAddr+"/healthz/ready", p); err != nil {
		return err
	}
	r.checkProcs(v, adminAddr)
	for _, port := range plaintextPorts {
		if err := waitTCP(ctx, hostPort(ip, port), p); err != nil {
			return err
		}
	}
	if !s.hbone {
		return nil
	}
	var port int
	var authority string
	switch {
	case s.kind == kindBulk:
		port, authority = portSrcBulk, hostPort(ipVIPBulk, portSink)
	case s.kind == kindIdle:
		port, authority = portSrcIdle, hostPort(ipVIPIdle, portEcho)
	case s.protocol == "grpc":
		port, authority = portSrcGRPC, hostPort(ipVIPGRPC, portGRPC)
	default:
		port, authority = portSrcHTTP, hostPort(ipVIPHTTP, 80)
	}
	src := hostPort(d.source, port)
	p, err = r.sup.start("hbone-connect-"+tag, nil, r.tools.hbone, "connect", "--listen", src, "--via", hboneAddr,
		"--authority", authority, "--cert-dir", r.certDir(saClient), "--peer-identity", spiffeID(saWaypoint), "--log-level", r.o.logLevel)
	if err != nil {
		return err
	}
	d.procs = append(d.procs, p)
	return waitTCP(ctx, src, p)
}

// deployNginxChain starts the nginx TLS chain: edges first, then the middle.
func (r *runner) deployNginxChain(ctx context.Context, d *deployment, dir string) error {
	for _, part := range []struct {
		name, tmpl string
		addrs      []string
	}{
		{"edges", "nginx-tls-edges.conf.tmpl", []string{hostPort(ipNginxSource, portSrcHTTP), hostPort(ipNginxSource, portSrcGRPC),
			hostPort(ipPod, portTLSHTTP), hostPort(ipPod, portTLSGRPC)}},
		{"middle", "nginx-tls-middle.conf.tmpl", []string{hostPort(ipNginxMiddle, portTLSHTTP), hostPort(ipNginxMiddle, portTLSGRPC)}},
	} {
		pdir := filepath.Join(dir, part.name)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		conf, err := r.render(part.tmpl, pdir, "")
		if err != nil {
			return err
		}
		p, err := r.sup.start("nginx-tls-"+part.name+"-"+filepath.Base(dir), nil, r.tools.nginx,
			"-p", pdir+"/", "-e", filepath.Join(pdir, "error.log"), "-c", conf)
		if err != nil {
			return err
		}
		d.procs = append(d.procs, p)
		d.measured = p
		for _, a := range part.addrs {
			if err := waitTCP(ctx, a, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) certDir(sa string) string { return filepath.Join(r.certs, idNamespace, sa) }

// render writes bench/loadtest/<tmpl> filled in for a proxy working in dir
// and listening on ip, and returns the file's path.
func (r *runner) render(tmpl, dir, ip string) (string, error) {
	out := filepath.Join(dir, tmpl[:len(tmpl)-len(".tmpl")])
	return out, renderTemplate(filepath.Join(r.templates, tmpl), out, newTemplateData(dir, r.certs, ip))
}

func renderTemplate(src, dst string, data templateData) error {
	t, err := template.New(filepath.Base(src)).Option("missingkey=error").ParseFiles(src)
	if err != nil {
		return fmt.Errorf("config template: %w", err)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := t.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("config template %s: %w", filepath.Base(src), err)
	}
	return f.Close()
}

// waitTCP waits until addr accepts a connection, failing early when p exits.
func waitTCP(ctx context.Context, addr string, p *process) error {
	return waitFor(ctx, p, "listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// waitHTTP waits until url answers 200, failing early when p exits.
func waitHTTP(ctx context.Context, url string, p *process) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	return waitFor(ctx, p, "200 from "+url, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func waitFor(ctx context.Context, p *process, what string, ok func() bool) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if ok() {
			return nil
		}
		if err := p.exitError(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %s after %s; its last output (%s):\n%s", p.name, what, readyTimeout, p.logPath, p.logTail(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkProcs asks v's waypoint (its admin's /server_info, whose
// command_line_options.concurrency is the GOMAXPROCS in force) which
// GOMAXPROCS it runs with: the figure in an unset variant's name, and a
// problem when a set one differs.
func (r *runner) checkProcs(v variant, adminAddr string) {
	n, err := serverGOMAXPROCS("http://" + adminAddr + "/server_info")
	switch {
	case err != nil:
		r.problem("%s: GOMAXPROCS not read: %v", v.id, err)
	case v.gomaxprocs == 0:
		r.unsetProcs = n
	case n != v.gomaxprocs:
		r.problem("%s: runs with GOMAXPROCS %d, not the %d it was given", v.id, n, v.gomaxprocs)
	}
}

// serverGOMAXPROCS reads command_line_options.concurrency from a
// waypoint's /server_info.
func serverGOMAXPROCS(url string) (int, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var info struct {
		CommandLineOptions struct {
			Concurrency int `json:"concurrency"`
		} `json:"command_line_options"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return 0, fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || info.CommandLineOptions.Concurrency < 1 {
		return 0, fmt.Errorf("%s: %s, concurrency %d", url, resp.Status, info.CommandLineOptions.Concurrency)
	}
	return info.CommandLineOptions.Concurrency, nil
}

package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// DefaultIP is the loopback address `make cluster` listens on; tests pick their own.
const DefaultIP = "127.20.0.1"

// Ports, the same on every cluster's address (each cluster has its own address).
const (
	EtcdPort        = 2379
	EtcdPeerPort    = 2380
	APIServerPort   = 6443
	IstiodGRPCPort  = 15010 // xDS in plaintext
	IstiodXDSPort   = 15012 // xDS and the CA over TLS, the port a waypoint talks to
	IstiodHTTPPort  = 8080  // /ready
	IstiodHTTPSPort = 15017 // webhooks
	IstiodMonPort   = 15014 // /metrics and /debug/*
	IstiodCtrlzPort = 9876
)

// IstiodServerName is the name on istiod's serving certificate that proxies check.
const IstiodServerName = "istiod.istio-system.svc"

// Config is what Start needs.
type Config struct {
	// Bins is the built control plane (Build).
	Bins *Bins
	// Dir holds the cluster's state: etcd's data, keys, the kubeconfig, istiod's working
	// directory and every process's log (NAME.log). Created; emptied first.
	Dir string
	// IP is the loopback address every server listens on (DefaultIP when empty).
	IP string
	// MeshCA is a directory with the mesh root, root-cert.pem and root-key.pem (what
	// `waypoint certs` writes): istiod's CA signs with it, so every identity made with it
	// is in istiod's mesh. Required.
	MeshCA string
	// Log receives progress lines (never the processes' output, which goes to Dir).
	Log io.Writer
	// IstiodEnv adds to istiod's environment (NAME=VALUE).
	IstiodEnv []string
	// MeshConfig is the mesh config (MeshConfig YAML) istiod starts with, as the ConfigMap
	// istio-system/istio (key mesh) that istiod watches; DefaultMeshConfig when empty.
	MeshConfig string
}

// DefaultMeshConfig is the mesh config of a cluster: Istio's defaults, the trust domain
// cluster.local, and extension providers for what users point Telemetry and CUSTOM
// AuthorizationPolicies at (the services they name need not exist for istiod to render them).
const DefaultMeshConfig = `
trustDomain: cluster.local
accessLogFile: ""
enableTracing: true
extensionProviders:
- name: envoy-json
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        path: "%REQ(:PATH)%"
        code: "%RESPONSE_CODE%"
        upstream: "%UPSTREAM_HOST%"
- name: otel-tracing
  opentelemetry:
    service: otel-collector.istio-system.svc.cluster.local
    port: 4317
- name: otel-http-tracing
  opentelemetry:
    service: otel-collector.istio-system.svc.cluster.local
    port: 4318
    http:
      path: /v1/traces
- name: otel-http-resources
  opentelemetry:
    service: otel-collector.istio-system.svc.cluster.local
    port: 4318
    http:
      path: /v1/traces
    resourceDetectors: {environment: {}, dynatrace: {}}
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
- name: otel-als
  envoyOtelAls:
    service: otel-collector.istio-system.svc.cluster.local
    port: 4317
- name: envoy-als-http
  envoyHttpAls: {service: als.istio-system.svc.cluster.local, port: 9001, logName: waypoint-http, additionalRequestHeadersToLog: [x-user]}
- name: envoy-als-tcp
  envoyTcpAls: {service: als.istio-system.svc.cluster.local, port: 9001, logName: waypoint-tcp}
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.istio-system.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]
- name: ext-authz-grpc
  envoyExtAuthzGrpc:
    service: ext-authz.istio-system.svc.cluster.local
    port: 9000
`

// Cluster is a running control plane. Its methods may be called from several goroutines.
type Cluster struct {
	IP         string
	Dir        string
	Kubeconfig string // a kubeconfig file for the admin (system:masters) user
	APIServer  string // https://IP:6443
	Token      string // the admin's bearer token

	Rest    *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	cfg   Config
	mu    sync.Mutex
	procs []*process
	apply *applier
}

// IstiodXDS is istiod's TLS address for xDS and certificates (":15012").
func (c *Cluster) IstiodXDS() string { return net.JoinHostPort(c.IP, strconv.Itoa(IstiodXDSPort)) }

// IstiodMonitoring is the base URL of istiod's monitoring port (/debug/syncz, /debug/config_dump).
func (c *Cluster) IstiodMonitoring() string {
	return "http://" + net.JoinHostPort(c.IP, strconv.Itoa(IstiodMonPort))
}

// IstiodRootCert is the file of the mesh root istiod's serving certificate chains to.
func (c *Cluster) IstiodRootCert() string { return filepath.Join(c.cfg.MeshCA, "root-cert.pem") }

// Start starts etcd, the API server (then the CRDs) and istiod on cfg.IP, and waits until
// each is ready. ctx bounds the start only. Stop ends them; if the calling process dies,
// the kernel ends them (SIGKILL on parent death).
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.IP == "" {
		cfg.IP = DefaultIP
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Bins == nil || cfg.MeshCA == "" || cfg.Dir == "" {
		return nil, errors.New("cluster: Bins, Dir and MeshCA are required")
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c = &Cluster{IP: cfg.IP, Dir: cfg.Dir, cfg: cfg}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	start := time.Now()
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "cluster: API server ready at %s (%.1fs)\n", c.APIServer, time.Since(start).Seconds())
	if err := c.installCRDs(ctx); err != nil {
		return nil, err
	}
	if err := c.applyMeshConfig(ctx); err != nil {
		return nil, err
	}
	if err := c.startIstiod(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "cluster: istiod ready, xDS at %s (%.1fs)\n", c.IstiodXDS(), time.Since(start).Seconds())
	return c, nil
}

// Stop ends every process of the cluster and waits for them. The API server gets SIGKILL
// (it would drain for a minute), the others SIGTERM and, after 5 s, SIGKILL.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// LogFile is the log file of a process of the cluster: "etcd", "kube-apiserver", "istiod".
func (c *Cluster) LogFile(name string) string { return filepath.Join(c.Dir, name+".log") }

func (c *Cluster) addr(port int) string { return net.JoinHostPort(c.IP, strconv.Itoa(port)) }

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, peer := "http://"+c.addr(EtcdPort), "http://"+c.addr(EtcdPeerPort)
	p, err := c.spawn("etcd", c.Dir, nil, c.cfg.Bins.Etcd,
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer,
		"--listen-metrics-urls", "http://"+c.addr(EtcdPort+2),
		"--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return err
	}
	p.killHard = false
	return waitHTTP(ctx, p, http.DefaultClient, client+"/health", "", 30*time.Second)
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	dir := filepath.Join(c.Dir, "kube-apiserver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	p, err := c.spawn("kube-apiserver", dir, nil, c.cfg.Bins.APIServer,
		"--etcd-servers", "http://"+c.addr(EtcdPort),
		"--bind-address", c.IP, "--advertise-address", c.IP, "--secure-port", strconv.Itoa(APIServerPort),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--api-audiences", "https://kubernetes.default.svc,istio-ca",
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v", "1")
	if err != nil {
		return err
	}
	c.APIServer = "https://" + c.addr(APIServerPort)
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitHTTP(ctx, p, httpc, c.APIServer+"/readyz", c.Token, 90*time.Second); err != nil {
		return err
	}
	return c.connect(filepath.Join(dir, "certs", "apiserver.crt"))
}

// startIstiod runs pilot-discovery in its own working directory, where it finds the mesh CA
// (./etc/cacerts) and the injector's templates (./var/lib/istio/inject).
func (c *Cluster) startIstiod(ctx context.Context) error {
	dir := filepath.Join(c.Dir, "istiod")
	root, err := os.ReadFile(filepath.Join(c.cfg.MeshCA, "root-cert.pem"))
	if err != nil {
		return fmt.Errorf("cluster: the mesh CA: %w", err)
	}
	key, err := os.ReadFile(filepath.Join(c.cfg.MeshCA, "root-key.pem"))
	if err != nil {
		return fmt.Errorf("cluster: the mesh CA: %w", err)
	}
	inject := map[string]string{"config": c.cfg.Bins.InjectConfig, "values": c.cfg.Bins.InjectValues}
	files := map[string][]byte{
		"etc/cacerts/ca-cert.pem":    root,
		"etc/cacerts/ca-key.pem":     key,
		"etc/cacerts/root-cert.pem":  root,
		"etc/cacerts/cert-chain.pem": root,
	}
	for name, src := range inject {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		files["var/lib/istio/inject/"+name] = b
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	env := append([]string{
		"PILOT_ENABLE_AMBIENT=true",
		"POD_NAMESPACE=istio-system",
		"POD_NAME=istiod-local",
		"REVISION=default",
		"CLUSTER_ID=Kubernetes",
		"PILOT_CERT_PROVIDER=istiod",
		"ISTIO_DUAL_STACK=true", // a dual-stack pod's endpoints get additional_addresses; IPv4 proxies' config is unchanged
		"ISTIOD_CUSTOM_HOST=" + IstiodServerName,
		"KUBECONFIG=" + c.Kubeconfig,
	}, c.cfg.IstiodEnv...)
	p, err := c.spawn("istiod", dir, env, c.cfg.Bins.Istiod, "discovery",
		"--kubeconfig", c.Kubeconfig,
		"--domain", "cluster.local",
		"--grpcAddr", c.addr(IstiodGRPCPort),
		"--secureGRPCAddr", c.addr(IstiodXDSPort),
		"--httpAddr", c.addr(IstiodHTTPPort),
		"--httpsAddr", c.addr(IstiodHTTPSPort),
		"--monitoringAddr", c.addr(IstiodMonPort),
		"--ctrlz_address", c.IP, "--ctrlz_port", strconv.Itoa(IstiodCtrlzPort),
		"--log_output_level", "default:info")
	if err != nil {
		return err
	}
	return waitHTTP(ctx, p, http.DefaultClient, "http://"+c.addr(IstiodHTTPPort)+"/ready", "", 2*time.Minute)
}

// process is a server of the cluster.
type process struct {
	name     string
	cmd      *exec.Cmd
	log      *os.File
	done     chan struct{}
	err      error
	killHard bool // SIGKILL at once
}

// spawn starts a process of the cluster with its output in Dir/NAME.log.
func (c *Cluster) spawn(name, dir string, env []string, bin string, args ...string) (*process, error) {
	log, err := os.Create(c.LogFile(name))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("cluster: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{}), killHard: name == "kube-apiserver"}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

func (p *process) stop() {
	sig := syscall.SIGTERM
	if p.killHard {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitHTTP waits until url answers 200, failing early when the process exits.
func waitHTTP(ctx context.Context, p *process, client *http.Client, url, token string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("cluster: %s exited (%v) before %s was ready; see %s", p.name, p.err, url, p.log.Name())
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready at %s within %v (last: %s); see %s", p.name, url, limit, last, p.log.Name())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writeRSAKey(path string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return os.WriteFile(path, b, 0o600)
}

// Package kubeapply is a small Kubernetes REST client: the kubeconfig (or
// a pod's service account) read into a Config, then GET, server-side apply
// and merge patch of single objects, with the API server's Status shown in
// errors. It serves `waypoint apply` and nothing else.
//
// It is hand-written, not client-go, on purpose: the waypoint binary is
// the proxy that runs in every waypoint pod, and it links no k8s.io module
// (client-go and apimachinery would bring their dependency tree and their
// init-time type registries into the data path's binary). What `waypoint
// apply` needs of the API is three kinds of request on single objects.
//
// What the kubeconfig may hold, and what is refused, is listed on Load.
package kubeapply

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultServiceAccountDir is where a pod's service account token, CA and
// namespace are mounted: the in-cluster config.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config is how to reach and authenticate to one API server: a kubeconfig
// context, or a pod's service account. It is read-only once loaded and may
// be shared.
type Config struct {
	// Server is the API server's base URL, https://host:port, possibly
	// with a path prefix (a proxy in front of the server).
	Server string
	// TLS verifies the server (the cluster's CA, else the system's roots;
	// or nothing with insecure-skip-tls-verify) and holds the client
	// certificate if any.
	TLS *tls.Config
	// ProxyURL is the cluster's proxy-url; nil uses $HTTPS_PROXY and
	// friends, as client-go does.
	ProxyURL *url.URL
	// Token is a bearer token; TokenFile, when set, wins over it and is
	// read afresh on every request (a projected token rotates).
	Token, TokenFile string
	// Username and Password are HTTP basic credentials (never with a
	// token).
	Username, Password string
	// Namespace is the context's namespace, or the pod's; "" when none
	// is set.
	Namespace string
	// Source says where the config came from, for messages: "kubeconfig
	// FILE, context NAME" or "in-cluster service account".
	Source string
}

// Sources say where Load looks. The zero value is the usual lookup of
// kubectl for a process: $KUBECONFIG, ~/.kube/config, then the pod's
// service account.
type Sources struct {
	// Kubeconfig is a kubeconfig file that must exist (--kubeconfig); ""
	// looks at $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the context to use (--context); "" is the file's
	// current-context.
	Context string
	// Getenv reads the environment; nil is os.Getenv.
	Getenv func(string) string
	// Home is the home directory of ~/.kube/config; "" is
	// os.UserHomeDir's.
	Home string
	// ServiceAccountDir is the in-cluster token, ca.crt and namespace's
	// directory; "" is DefaultServiceAccountDir.
	ServiceAccountDir string
}

// Load finds and reads the config: the file of s.Kubeconfig; else the
// first entry of $KUBECONFIG (a list separated by the OS's path list
// separator) that exists, the others unread (client-go would merge them);
// else ~/.kube/config; else, when none of them exists and
// $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT are set, the
// pod's service account (its token read on every request, its ca.crt, its
// namespace). In a kubeconfig the context (s.Context, else
// current-context) names the cluster and the user; taken from the
// cluster: server, certificate-authority, certificate-authority-data,
// insecure-skip-tls-verify, tls-server-name, proxy-url; from the user:
// client-certificate(-data) with client-key(-data), token, tokenFile,
// username and password. Relative file names are relative to the
// kubeconfig's directory. A user with an exec or auth-provider plugin, or
// impersonation (as, as-groups...), is refused with an error naming it:
// this client runs no plugins.
func Load(s Sources) (*Config, error) {
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	path := s.Kubeconfig
	if path == "" {
		var err error
		if path, err = findKubeconfig(getenv, s.Home); err != nil {
			return nil, err
		}
	}
	if path == "" {
		if s.Context != "" {
			return nil, fmt.Errorf("--context %q: no kubeconfig found ($KUBECONFIG, ~/.kube/config)", s.Context)
		}
		return InCluster(getenv, cmp.Or(s.ServiceAccountDir, DefaultServiceAccountDir))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return ParseKubeconfig(data, path, s.Context)
}

// findKubeconfig is the first existing file of $KUBECONFIG, else
// ~/.kube/config if it exists, else "".
func findKubeconfig(getenv func(string) string, home string) (string, error) {
	if list := getenv("KUBECONFIG"); list != "" {
		for _, p := range filepath.SplitList(list) {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", nil
	}
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", nil
		}
	}
	p := filepath.Join(home, ".kube", "config")
	if _, err := os.Stat(p); err != nil {
		return "", nil
	}
	return p, nil
}

// InCluster is the config of a pod's service account: the API server at
// $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, verified against
// dir/ca.crt, with the token of dir/token (read on every request) and
// the namespace of dir/namespace.
func InCluster(getenv func(string) string, dir string) (*Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a pod ($KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT unset)")
	}
	c := &Config{Server: "https://" + net.JoinHostPort(host, port), TokenFile: filepath.Join(dir, "token"),
		Source: "in-cluster service account (" + dir + ")"}
	if _, err := os.Stat(c.TokenFile); err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("in-cluster config: %s: no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if ns, err := os.ReadFile(filepath.Join(dir, "namespace")); err == nil {
		c.Namespace = strings.TrimSpace(string(ns))
	}
	return c, nil
}

// kubeconfig is the part of a kubeconfig file (clientcmd's v1 Config)
// that is read; unknown fields are skipped.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string    `json:"name"`
		Cluster kcCluster `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User kcUser `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string    `json:"name"`
		Context kcContext `json:"context"`
	} `json:"contexts"`
}

type kcCluster struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
	CertificateAuthority     string `json:"certificate-authority"`
	CertificateAuthorityData []byte `json:"certificate-authority-data"`
	ProxyURL                 string `json:"proxy-url"`
}

type kcUser struct {
	ClientCertificate     string          `json:"client-certificate"`
	ClientCertificateData []byte          `json:"client-certificate-data"`
	ClientKey             string          `json:"client-key"`
	ClientKeyData         []byte          `json:"client-key-data"`
	Token                 string          `json:"token"`
	TokenFile             string          `json:"tokenFile"`
	Username              string          `json:"username"`
	Password              string          `json:"password"`
	As                    string          `json:"as"`
	AsUID                 string          `json:"as-uid"`
	AsGroups              []string        `json:"as-groups"`
	AsUserExtra           map[string]any  `json:"as-user-extra"`
	AuthProvider          *kcAuthProvider `json:"auth-provider"`
	Exec                  *kcExec         `json:"exec"`
}

type kcAuthProvider struct {
	Name string `json:"name"`
}

type kcExec struct {
	Command string `json:"command"`
}

type kcContext struct {
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Namespace string `json:"namespace"`
}

// ParseKubeconfig reads a kubeconfig's context (current-context when
// context is "") into a Config, as Load describes; path names the file in
// errors and is the base of its relative file names.
func ParseKubeconfig(data []byte, path, context string) (*Config, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	name := cmp.Or(context, kc.CurrentContext)
	if name == "" {
		return nil, fmt.Errorf("kubeconfig %s: no current-context, and no --context", path)
	}
	var ctx *kcContext
	for i := range kc.Contexts {
		if kc.Contexts[i].Name == name {
			ctx = &kc.Contexts[i].Context
			break
		}
	}
	if ctx == nil {
		return nil, fmt.Errorf("kubeconfig %s: no context %q", path, name)
	}
	var cluster *kcCluster
	for i := range kc.Clusters {
		if kc.Clusters[i].Name == ctx.Cluster {
			cluster = &kc.Clusters[i].Cluster
			break
		}
	}
	if cluster == nil {
		return nil, fmt.Errorf("kubeconfig %s: context %q names cluster %q, which the file does not define", path, name, ctx.Cluster)
	}
	var user kcUser
	if ctx.User != "" {
		found := false
		for i := range kc.Users {
			if kc.Users[i].Name == ctx.User {
				user, found = kc.Users[i].User, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("kubeconfig %s: context %q names user %q, which the file does not define", path, name, ctx.User)
		}
	}
	where := fmt.Sprintf("kubeconfig %s, context %q", path, name)
	c := &Config{Namespace: ctx.Namespace, Source: where}
	dir := filepath.Dir(path)
	if err := c.setCluster(cluster, dir); err != nil {
		return nil, fmt.Errorf("%s, cluster %q: %w", where, ctx.Cluster, err)
	}
	if err := c.setUser(&user, dir); err != nil {
		return nil, fmt.Errorf("%s, user %q: %w", where, ctx.User, err)
	}
	return c, nil
}

// resolve makes a kubeconfig's relative file name relative to its
// directory, as client-go does.
func resolve(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

func (c *Config) setCluster(k *kcCluster, dir string) error {
	u, err := url.Parse(k.Server)
	if err != nil || k.Server == "" {
		return fmt.Errorf("server %q: want https://host[:port]", k.Server)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("server %q: want https://host[:port]", k.Server)
	}
	c.Server = strings.TrimSuffix(k.Server, "/")
	if k.ProxyURL != "" {
		if c.ProxyURL, err = url.Parse(k.ProxyURL); err != nil || c.ProxyURL.Host == "" {
			return fmt.Errorf("proxy-url %q: want scheme://host:port", k.ProxyURL)
		}
	}
	c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.TLSServerName}
	ca := k.CertificateAuthorityData
	if len(ca) == 0 && k.CertificateAuthority != "" {
		if ca, err = os.ReadFile(resolve(dir, k.CertificateAuthority)); err != nil {
			return fmt.Errorf("certificate-authority: %w", err)
		}
	}
	switch {
	case k.InsecureSkipTLSVerify && len(ca) > 0:
		return errors.New("insecure-skip-tls-verify with a certificate-authority: set one of them (kubectl refuses both too)")
	case k.InsecureSkipTLSVerify:
		c.TLS.InsecureSkipVerify = true
	case len(ca) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return errors.New("certificate-authority: no PEM certificate in it")
		}
		c.TLS.RootCAs = pool
	}
	return nil
}

func (c *Config) setUser(u *kcUser, dir string) error {
	switch {
	case u.Exec != nil:
		return fmt.Errorf("authenticates with an exec plugin (%q), which waypoint does not run: use a user with a token, tokenFile or client certificate (e.g. a token from `kubectl create token`), or istioctl", u.Exec.Command)
	case u.AuthProvider != nil:
		return fmt.Errorf("authenticates with the auth-provider plugin %q, which waypoint does not run: use a user with a token, tokenFile or client certificate, or istioctl", u.AuthProvider.Name)
	case u.As != "" || u.AsUID != "" || len(u.AsGroups) > 0 || len(u.AsUserExtra) > 0:
		return errors.New("impersonation (as, as-uid, as-groups, as-user-extra) is not supported")
	}
	c.Token, c.TokenFile = u.Token, resolve(dir, u.TokenFile)
	c.Username, c.Password = u.Username, u.Password
	if (c.Token != "" || c.TokenFile != "") && (c.Username != "" || c.Password != "") {
		return errors.New("a token and a username/password: set one of them (kubectl refuses both too)")
	}
	if c.TokenFile != "" {
		if _, err := os.Stat(c.TokenFile); err != nil {
			return fmt.Errorf("tokenFile: %w", err)
		}
	}
	certPEM, keyPEM := u.ClientCertificateData, u.ClientKeyData
	var err error
	if len(certPEM) == 0 && u.ClientCertificate != "" {
		if certPEM, err = os.ReadFile(resolve(dir, u.ClientCertificate)); err != nil {
			return fmt.Errorf("client-certificate: %w", err)
		}
	}
	if len(keyPEM) == 0 && u.ClientKey != "" {
		if keyPEM, err = os.ReadFile(resolve(dir, u.ClientKey)); err != nil {
			return fmt.Errorf("client-key: %w", err)
		}
	}
	switch {
	case len(certPEM) == 0 && len(keyPEM) == 0:
		return nil
	case len(certPEM) == 0:
		return errors.New("a client-key without a client-certificate")
	case len(keyPEM) == 0:
		return errors.New("a client-certificate without a client-key")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("client-certificate and client-key: %w", err)
	}
	c.TLS.Certificates = []tls.Certificate{pair}
	return nil
}

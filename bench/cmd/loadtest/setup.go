package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const (
	modulePath = "github.com/gowaypoint/waypoint"
	fortioPkg  = "fortio.org/fortio"
	fortioVer  = "1.66.5"
)

// tools are the executables a run uses.
type tools struct {
	waypoint, hbone, fortio  string
	nginx, haproxy, caddy    string
	nghttp                   string // optional: the h2c pre-flight check
	fortioVersion, goVersion string
}

// moduleRoot finds the waypoint module's directory from the working
// directory upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s in the working directory or above: run the harness inside the repository", modulePath)
		}
		dir = parent
	}
}

// findTools locates, builds or installs what the selected proxies and
// scenarios need. binDir, when set, holds prebuilt waypoint and hbone
// binaries; otherwise they are built from root into workDir, so the run
// measures the tree as it is. fortio is installed into root/bin/tools when
// missing, as the end-to-end tests do. The Debian packages are only looked
// for: bench/loadtest/setup.sh (make loadtest) installs them.
func findTools(o *options, root, workDir string) (*tools, error) {
	t := &tools{}
	if o.binDir == "" {
		out := filepath.Join(workDir, "bin")
		fmt.Printf("building waypoint and hbone from %s ...\n", root)
		build := exec.Command("go", "build", "-o", out+string(os.PathSeparator), modulePath+"/cmd/waypoint", modulePath+"/cmd/hbone")
		build.Dir = root
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/waypoint ./cmd/hbone: %v\n%s", err, b)
		}
		o.binDir = out
	}
	t.waypoint = filepath.Join(o.binDir, "waypoint")
	t.hbone = filepath.Join(o.binDir, "hbone")
	for _, p := range []string{t.waypoint, t.hbone} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("-bin %s: %w (make build writes bin/)", o.binDir, err)
		}
	}
	var err error
	if t.fortio, err = installFortio(o.fortio, root); err != nil {
		return nil, err
	}
	if b, err := exec.Command(t.fortio, "version").Output(); err == nil {
		t.fortioVersion = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		t.goVersion = strings.TrimSpace(string(b))
	}
	var missing []string
	need := func(dst *string, bin, pkg string) {
		if p, err := lookPath(bin); err == nil {
			*dst = p
		} else {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", bin, pkg))
		}
	}
	if o.proxySet["nginx"] {
		need(&t.nginx, "nginx", "nginx")
	}
	if o.proxySet["haproxy"] && o.usesPlaintext() {
		need(&t.haproxy, "haproxy", "haproxy")
	}
	if o.proxySet["caddy"] && o.usesPlaintext() {
		need(&t.caddy, "caddy", "caddy")
	}
	t.nghttp, _ = lookPath("nghttp")
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing: %s; install them with bench/loadtest/setup.sh (make loadtest runs it) or drop them from -proxies", strings.Join(missing, ", "))
	}
	return t, nil
}

// lookPath is exec.LookPath that also searches the sbin directories, where
// Debian puts nginx and haproxy, for users whose PATH lacks them.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, bin)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH or the sbin directories", bin)
}

// installFortio returns path when set, else root/bin/tools/fortio,
// installing the pinned version there when it is missing or another one.
func installFortio(path, root string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("-fortio: %w", err)
		}
		return path, nil
	}
	dir := filepath.Join(root, "bin", "tools")
	path = filepath.Join(dir, "fortio")
	if b, err := exec.Command(path, "version").Output(); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), fortioVer) {
		return path, nil
	}
	fmt.Printf("installing %s@v%s into %s ...\n", fortioPkg, fortioVer, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	install := exec.Command("go", "install", fortioPkg+"@v"+fortioVer)
	install.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if b, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@v%s: %v\n%s", fortioPkg, fortioVer, err, b)
	}
	return path, nil
}

// writeCerts makes the bench mesh's CA and identities with `waypoint certs`.
func writeCerts(t *tools, dir string) error {
	args := []string{"certs", "--out", dir}
	for _, sa := range []string{saWaypoint, saClient, saPod} {
		args = append(args, idNamespace+"/"+sa)
	}
	if b, err := exec.Command(t.waypoint, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("waypoint certs: %v\n%s", err, b)
	}
	for _, sa := range []string{saWaypoint, saClient, saPod} {
		if _, err := os.Stat(filepath.Join(dir, idNamespace, sa, "cert-chain.pem")); err != nil {
			return errors.New("waypoint certs wrote no " + sa + " identity: " + err.Error())
		}
	}
	return nil
}

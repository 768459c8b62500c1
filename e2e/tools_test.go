package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The real peers the end-to-end tests drive, pinned. They are installed
// with `go install` into bin/tools at the module root on first use (the
// module cache makes later runs instant); `make tools` does the same.
// h2spec is not among them: go.mod pins it with a tool directive and
// protocols/http2/h2spectest runs it with `go tool h2spec`.
var toolPackages = map[string]string{
	"fortio":         "fortio.org/fortio@v1.66.5",
	"interop-client": "google.golang.org/grpc/interop/client@" + grpcVersion(),
	"interop-server": "google.golang.org/grpc/interop/server@" + grpcVersion(),
}

var toolMu sync.Mutex

// grpcVersion is the grpc-go version in go.mod, so the interop peers match
// the library the proxy is built with.
func grpcVersion() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "google.golang.org/grpc").Output()
	if err != nil {
		return "v1.85.0"
	}
	return strings.TrimSpace(string(out))
}

// tool returns the path of a pinned tool, installing it when missing.
func tool(t *testing.T, name string) string {
	t.Helper()
	toolMu.Lock()
	defer toolMu.Unlock()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("finding the module root: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(root)), "bin", "tools")
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	pkg, ok := toolPackages[name]
	if !ok {
		t.Fatalf("unknown tool %q", name)
	}
	tmp := t.TempDir()
	install := exec.Command("go", "install", pkg)
	install.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", pkg, err, out)
	}
	built := filepath.Join(tmp, filepath.Base(strings.Split(pkg, "@")[0]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(built, path); err != nil {
		t.Fatalf("installing %s: %v", name, err)
	}
	return path
}

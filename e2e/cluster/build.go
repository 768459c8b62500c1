// Package cluster runs a local control plane for the end-to-end tests and for `make cluster`:
// etcd, kube-apiserver, the Gateway API's and Istio's CRDs, and istiod (pilot-discovery), all
// built from pinned Go modules and listening on one loopback address. There is no kubelet, no
// controller manager and no scheduler: tests create what those would (see Cluster).
//
// The binaries come from modules of their own, so that neither k8s.io/kubernetes nor the
// istio.io/istio development snapshot ever enters the product's go.mod:
//
//	kube/     etcd (go.etcd.io/etcd/server/v3) and kube-apiserver (k8s.io/kubernetes v1.37.2)
//	istiod/   pilot-discovery (istio.io/istio, the snapshot ../shared/istiod names)
//	istioctl/ istioctl, from the same istio.io/istio (a module of its own: its extra
//	          dependencies leave pilot-discovery's build alone)
//	helm/     helm (helm.sh/helm/v4), which renders that Istio's istiod chart into the
//	          injector templates istiod reads, and lints and renders charts/
//
// Build compiles them once into a directory (the repository's bin/cluster by default) and
// reuses them while the modules' go.mod, go.sum and commands are unchanged.
package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Versions of what the control plane is built from. The modules' go.mod files pin the
// rest; these are the ones read here.
const (
	KubernetesVersion = "v1.37.2"
	GatewayAPIVersion = "v1.6.3"
)

// noInlining compiles the control plane without inlining: about a fifth less compile time for
// the cold build (which a fresh CI machine pays), for binaries that serve a test's few objects.
const noInlining = "all=-l"

// Bins are the built control plane: its binaries and the files taken from Istio's and the
// Gateway API's modules.
type Bins struct {
	Dir                          string
	Etcd, APIServer, Istiod      string // binaries
	InjectConfig, InjectValues   string // the istio-sidecar-injector ConfigMap's data, rendered by Helm from Istio's istiod chart
	IstioCRDs                    string // one multi-document YAML file
	GatewayAPICRDs               string // a directory of YAML files (the standard channel)
	IstioVersion, IstioModuleRef string // what pilot-discovery reports, and the module version it was built from
	Istioctl                     string // istioctl of the same Istio, for the admin endpoints' tests
	Helm                         string // helm (module helm/), for the injector templates and the project's charts
}

// IstioctlEnv names a prebuilt istioctl that Build uses instead of building one into its
// directory (a shared bin/cluster stays untouched while istioctl is tried out elsewhere).
const IstioctlEnv = "WAYPOINT_ISTIOCTL"

// SourceDir is the directory of this package's sources (e2e/cluster), found from the
// compiled-in file name; the sub-modules are below it.
func SourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// DefaultBinDir is bin/cluster at the repository's top.
func DefaultBinDir() string {
	return filepath.Join(SourceDir(), "..", "..", "bin", "cluster")
}

// Build builds the control plane into dir (created), or reuses what an earlier Build left
// there when its stamp (a hash of the Go version and of the sub-modules' go.mod, go.sum and
// sources) is unchanged. Progress goes to log. A cold build takes 10 to 20 minutes on two
// cores; a warm one, a second.
func Build(ctx context.Context, dir string, log io.Writer) (*Bins, error) {
	src := SourceDir()
	b := &Bins{
		Dir:            dir,
		Etcd:           filepath.Join(dir, "etcd"),
		APIServer:      filepath.Join(dir, "kube-apiserver"),
		Istiod:         filepath.Join(dir, "pilot-discovery"),
		InjectConfig:   filepath.Join(dir, "istio", "inject", "config"),
		InjectValues:   filepath.Join(dir, "istio", "inject", "values"),
		IstioCRDs:      filepath.Join(dir, "istio", "crds", "istio.yaml"),
		GatewayAPICRDs: filepath.Join(dir, "gateway-api"),
	}
	istio, err := downloadModule(ctx, filepath.Join(src, "istiod"), "istio.io/istio")
	if err != nil {
		return nil, err
	}
	istioLD, err := istioVersionFlags(istio)
	if err != nil {
		return nil, err
	}
	kubeLD := fmt.Sprintf("-s -w -X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=%s",
		KubernetesVersion, strings.Split(KubernetesVersion, ".")[1])
	stamp, err := buildStamp(ctx, src, []string{"kube", "istiod"}, kubeLD, istioLD, noInlining)
	if err != nil {
		return nil, err
	}
	stampFile := filepath.Join(dir, "stamp")
	if old, err := os.ReadFile(stampFile); err != nil || string(old) != stamp || !b.complete() {
		if err := b.buildControlPlane(ctx, src, istio, kubeLD, istioLD, log); err != nil {
			return nil, err
		}
		if err := os.WriteFile(stampFile, []byte(stamp), 0o644); err != nil {
			return nil, err
		}
	}
	if err := b.buildIstioctl(ctx, src, istioLD, log); err != nil {
		return nil, err
	}
	helmStamp, err := b.buildHelm(ctx, src, log)
	if err != nil {
		return nil, err
	}
	if err := b.renderInjector(ctx, istio, stamp+helmStamp, log); err != nil {
		return nil, err
	}
	return b, b.readVersions()
}

// buildControlPlane builds etcd, kube-apiserver and pilot-discovery into b.Dir and copies the
// Gateway API's and Istio's CRDs there.
func (b *Bins) buildControlPlane(ctx context.Context, src string, istio module, kubeLD, istioLD string, log io.Writer) error {
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return err
	}
	os.Remove(filepath.Join(b.Dir, "stamp"))
	os.Remove(filepath.Join(b.Dir, "istio-manifests")) // what rendered the injector before Helm did
	steps := []struct {
		what, module string
		args         []string
	}{
		{"etcd and kube-apiserver", "kube", []string{"build", "-trimpath", "-gcflags", noInlining, "-ldflags", kubeLD, "-o", b.Dir + "/",
			"k8s.io/kubernetes/cmd/kube-apiserver", "./cmd/etcd"}},
		{"pilot-discovery", "istiod", []string{"build", "-trimpath", "-gcflags", noInlining, "-ldflags", "-s -w " + istioLD, "-o", b.Istiod,
			"istio.io/istio/pilot/cmd/pilot-discovery"}},
	}
	for _, s := range steps {
		fmt.Fprintf(log, "cluster: building %s (module e2e/cluster/%s)...\n", s.what, s.module)
		if err := goCmd(ctx, filepath.Join(src, s.module), log, s.args...); err != nil {
			return fmt.Errorf("cluster: build %s: %w", s.what, err)
		}
	}
	// Istio's CRDs as its base chart installs them.
	crds, err := os.ReadFile(filepath.Join(istio.Dir, "manifests", "charts", "base", "files", "crd-all.gen.yaml"))
	if err != nil {
		return fmt.Errorf("cluster: Istio's CRDs: %w", err)
	}
	if err := writeFile(b.IstioCRDs, crds); err != nil {
		return err
	}
	return copyGatewayAPICRDs(ctx, filepath.Join(src, "kube"), b.GatewayAPICRDs)
}

// buildIstioctl builds istioctl (module istioctl/) into b.Dir, or reuses the one there while
// its own stamp (stamp-istioctl: the Go version, the flags and the module's go.mod, go.sum and
// sources) is unchanged: a bin/cluster built before istioctl was added gets it without
// rebuilding the rest. $WAYPOINT_ISTIOCTL, when set, names a prebuilt istioctl instead.
func (b *Bins) buildIstioctl(ctx context.Context, src, istioLD string, log io.Writer) error {
	if p := os.Getenv(IstioctlEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("cluster: $%s: %w", IstioctlEnv, err)
		}
		b.Istioctl = p
		return nil
	}
	b.Istioctl = filepath.Join(b.Dir, "istioctl")
	stamp, err := buildStamp(ctx, src, []string{"istioctl"}, istioLD, noInlining)
	if err != nil {
		return err
	}
	stampFile := filepath.Join(b.Dir, "stamp-istioctl")
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp {
		if _, err := os.Stat(b.Istioctl); err == nil {
			return nil
		}
	}
	os.Remove(stampFile)
	fmt.Fprintf(log, "cluster: building istioctl (module e2e/cluster/istioctl)...\n")
	if err := goCmd(ctx, filepath.Join(src, "istioctl"), log, "build", "-trimpath", "-gcflags", noInlining, "-ldflags", "-s -w "+istioLD,
		"-o", b.Istioctl, "istio.io/istio/istioctl/cmd/istioctl"); err != nil {
		return fmt.Errorf("cluster: build istioctl: %w", err)
	}
	return os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// buildHelm builds helm (module helm/) into b.Dir, or reuses the one there while its own
// stamp (stamp-helm: the Go version, the flags and the module's go.mod, go.sum and sources)
// is unchanged, and returns that stamp.
func (b *Bins) buildHelm(ctx context.Context, src string, log io.Writer) (string, error) {
	b.Helm = filepath.Join(b.Dir, "helm")
	moduleDir := filepath.Join(src, "helm")
	helm, err := downloadModule(ctx, moduleDir, "helm.sh/helm/v4")
	if err != nil {
		return "", err
	}
	// The go command's default compiler flags, unlike the rest of the control plane's (-trimpath,
	// no inlining): helm's k8s.io/api, apimachinery and client-go packages are then the very ones
	// the e2e/cluster module's own build (`make e2e-istio` vets it first) left in the build cache.
	flags := []string{"-ldflags", "-s -w -X helm.sh/helm/v4/internal/version.version=" + helm.Version}
	stamp, err := buildStamp(ctx, src, []string{"helm"}, flags...)
	if err != nil {
		return "", err
	}
	stampFile := filepath.Join(b.Dir, "stamp-helm")
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp {
		if _, err := os.Stat(b.Helm); err == nil {
			return stamp, nil
		}
	}
	os.Remove(stampFile)
	fmt.Fprintf(log, "cluster: building helm %s (module e2e/cluster/helm)...\n", helm.Version)
	args := append(append([]string{"build"}, flags...), "-o", b.Helm, "helm.sh/helm/v4/cmd/helm")
	if err := goCmd(ctx, moduleDir, log, args...); err != nil {
		return "", fmt.Errorf("cluster: build helm: %w", err)
	}
	return stamp, os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// injectorChartArgs are the arguments after `helm template istiod CHART` that render the
// istiod chart of the pinned Istio as this control plane runs it: istiod in istio-system, no
// revision, the chart's ambient profile, on Kubernetes KubernetesVersion. pilot.cni.enabled is
// what istioctl's installer sets from its ambient profile's CNI component (with Helm, istio-cni
// is a release of its own that istiod's chart does not see); it changes only the sidecar
// template (istio-validation instead of istio-init), and with it the ConfigMap's data is byte
// for byte what `istioctl install --set profile=ambient` installs.
var injectorChartArgs = []string{"--namespace", "istio-system", "--kube-version", KubernetesVersion,
	"--set", "profile=ambient", "--set", "pilot.cni.enabled=true"}

// renderInjector renders the istiod chart of the pinned Istio (manifests/charts/istio-control/
// istio-discovery in its module) with helm and writes the data of its ConfigMap
// istio-sidecar-injector, which istiod reads from ./var/lib/istio/inject, to b.InjectConfig
// and b.InjectValues; it does nothing while stamp-inject holds stamp and the arguments.
func (b *Bins) renderInjector(ctx context.Context, istio module, stamp string, log io.Writer) error {
	chart := filepath.Join(istio.Dir, "manifests", "charts", "istio-control", "istio-discovery")
	args := append([]string{"template", "istiod", chart}, injectorChartArgs...)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\n%q\n", stamp, args)))
	stamp = hex.EncodeToString(sum[:])
	stampFile := filepath.Join(b.Dir, "stamp-inject")
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp && b.injectorWritten() {
		return nil
	}
	os.Remove(stampFile)
	fmt.Fprintf(log, "cluster: rendering the injector templates: helm %s\n", strings.Join(args, " "))
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, b.Helm, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: helm template of Istio's istiod chart: %w: %s", err, errOut.Bytes())
	}
	config, values, err := injectorData(out.Bytes())
	if err != nil {
		return err
	}
	if err := writeFile(b.InjectConfig, []byte(config)); err != nil {
		return err
	}
	if err := writeFile(b.InjectValues, []byte(values)); err != nil {
		return err
	}
	return os.WriteFile(stampFile, []byte(stamp), 0o644)
}

func (b *Bins) injectorWritten() bool {
	for _, f := range []string{b.InjectConfig, b.InjectValues} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// injectorData finds the ConfigMap istio-sidecar-injector in the output of `helm template`
// of Istio's istiod chart and returns its data's config and values.
func injectorData(manifest []byte) (config, values string, err error) {
	objs, err := ParseYAML(manifest)
	if err != nil {
		return "", "", fmt.Errorf("cluster: the istiod chart's manifest: %w", err)
	}
	for _, o := range objs {
		if o.GetAPIVersion() != "v1" || o.GetKind() != "ConfigMap" || o.GetName() != "istio-sidecar-injector" {
			continue
		}
		data, _ := o.Object["data"].(map[string]any)
		config, _ = data["config"].(string)
		values, _ = data["values"].(string)
		if config == "" || values == "" {
			return "", "", fmt.Errorf("cluster: the istiod chart's ConfigMap istio-sidecar-injector has no data.config or data.values")
		}
		return config, values, nil
	}
	return "", "", fmt.Errorf("cluster: the istiod chart rendered no ConfigMap istio-sidecar-injector (%d objects)", len(objs))
}

func (b *Bins) complete() bool {
	for _, f := range []string{b.Etcd, b.APIServer, b.Istiod, b.IstioCRDs, b.GatewayAPICRDs} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// readVersions fills IstioVersion (from pilot-discovery's own report) and IstioModuleRef.
func (b *Bins) readVersions() error {
	out, err := exec.Command(b.Istiod, "version", "-o", "json").Output()
	if err != nil {
		return fmt.Errorf("cluster: %s version: %w", b.Istiod, err)
	}
	var v struct {
		ClientVersion struct {
			Version string `json:"version"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("cluster: pilot-discovery version: %w", err)
	}
	b.IstioVersion = v.ClientVersion.Version
	mod, err := exec.Command("go", "version", "-m", b.Istiod).Output()
	if err != nil {
		return fmt.Errorf("cluster: go version -m: %w", err)
	}
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == "istio.io/istio" {
			b.IstioModuleRef = f[2]
		}
	}
	return nil
}

// module is a downloaded Go module: its version and its directory in the module cache.
type module struct{ Version, Dir string }

// downloadModule downloads path at the version the module at moduleDir requires.
func downloadModule(ctx context.Context, moduleDir, path string) (module, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", path)
	cmd.Dir, cmd.Stdout, cmd.Stderr = moduleDir, &out, os.Stderr
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if err := cmd.Run(); err != nil {
		return module{}, fmt.Errorf("cluster: go mod download %s: %w", path, err)
	}
	var m module
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return module{}, fmt.Errorf("cluster: go mod download %s: %w", path, err)
	}
	if m.Dir == "" || m.Version == "" {
		return module{}, fmt.Errorf("cluster: go mod download %s: no directory or version", path)
	}
	return m, nil
}

// istioVersionFlags are the linker flags that give pilot-discovery the version Istio's own
// development builds report: the VERSION file of the pinned module and its commit,
// "1.31-alpha.eed52ebb66ad" (without them it reports "unknown").
func istioVersionFlags(m module) (string, error) {
	v, err := os.ReadFile(filepath.Join(m.Dir, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("cluster: istio.io/istio's VERSION: %w", err)
	}
	commit := m.Version[strings.LastIndex(m.Version, "-")+1:]
	version := strings.TrimSpace(string(v)) + "-alpha." + commit
	const pkg = "istio.io/istio/pkg/version."
	return fmt.Sprintf("-X %sbuildVersion=%s -X %sbuildGitRevision=%s -X %sbuildStatus=Clean -X %sbuildTag=%s",
		pkg, version, pkg, commit, pkg, pkg, version), nil
}

// buildStamp hashes what the binaries of modules are built from.
func buildStamp(ctx context.Context, src string, modules []string, flags ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", flags)
	v, err := exec.CommandContext(ctx, "go", "version").Output()
	if err != nil {
		return "", fmt.Errorf("cluster: go version: %w", err)
	}
	h.Write(v)
	fmt.Fprintf(h, "gateway-api %s\n", GatewayAPIVersion)
	for _, m := range modules {
		err := filepath.WalkDir(filepath.Join(src, m), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if n := d.Name(); n != "go.mod" && n != "go.sum" && !strings.HasSuffix(n, ".go") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %d\n", p[len(src):], len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyGatewayAPICRDs copies config/crd/standard of the pinned Gateway API module into dst.
func copyGatewayAPICRDs(ctx context.Context, moduleDir, dst string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@"+GatewayAPIVersion)
	cmd.Dir, cmd.Stdout, cmd.Stderr = moduleDir, &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: download the Gateway API %s: %w", GatewayAPIVersion, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.Dir == "" {
		return fmt.Errorf("cluster: go mod download sigs.k8s.io/gateway-api: no directory (%v)", err)
	}
	files, err := filepath.Glob(filepath.Join(m.Dir, "config", "crd", "standard", "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("cluster: no CRDs in %s/config/crd/standard", m.Dir)
	}
	os.RemoveAll(dst)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// goCmd runs the go command in the module at dir.
func goCmd(ctx context.Context, dir string, log io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(os.Environ(), "GOWORK=off")
	return cmd.Run()
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

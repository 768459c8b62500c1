package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Contents is what Verify read of an image tarball.
type Contents struct {
	RepoTags []string
	Config   *v1.ConfigFile
	Files    map[string]*tar.Header // by absolute path, the flattened filesystem
	Passwd   string
	Binary   []byte
}

// Verify reads the docker-archive tarball at file and checks that it is
// spec's image for p: one image tagged ref; user 1337:1337; entrypoint the
// binary; the platform; regular files only /etc/passwd, /etc/group and the
// binary (no shell, nothing else to run); istio-proxy in /etc/passwd; the
// binary a static ELF executable for p's architecture.
func Verify(file string, spec Spec, p v1.Platform, ref string) (*Contents, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, err
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("%s: %d images in manifest.json, want 1", file, len(m))
	}
	c := &Contents{RepoTags: m[0].RepoTags, Files: map[string]*tar.Header{}}
	if !slices.Equal(c.RepoTags, []string{ref}) {
		return c, fmt.Errorf("%s: RepoTags %q, want [%q]", file, c.RepoTags, ref)
	}
	img, err := tarball.Image(opener, nil)
	if err != nil {
		return c, err
	}
	if c.Config, err = img.ConfigFile(); err != nil {
		return c, err
	}
	cfg := c.Config
	var errs []error
	if cfg.Config.User != User {
		errs = append(errs, fmt.Errorf("user %q, want %q", cfg.Config.User, User))
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{spec.Binary()}) || len(cfg.Config.Cmd) != 0 {
		errs = append(errs, fmt.Errorf("entrypoint %q cmd %q, want [%q] and none", cfg.Config.Entrypoint, cfg.Config.Cmd, spec.Binary()))
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture || cfg.Variant != p.Variant {
		errs = append(errs, fmt.Errorf("platform %s/%s/%s, want %s", cfg.OS, cfg.Architecture, cfg.Variant, p.String()))
	}
	if cfg.Config.Labels["org.opencontainers.image.source"] != Source || cfg.Config.Labels["org.opencontainers.image.version"] == "" {
		errs = append(errs, fmt.Errorf("labels %v: want org.opencontainers.image.source %s and a version", cfg.Config.Labels, Source))
	}

	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, fmt.Errorf("%s: reading the filesystem: %w", file, err)
		}
		p := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		c.Files[p] = h
		switch p {
		case "/etc/passwd":
			b, _ := io.ReadAll(tr)
			c.Passwd = string(b)
		case spec.Binary():
			c.Binary, _ = io.ReadAll(tr)
		}
	}
	var regular []string
	for p, h := range c.Files {
		switch h.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			regular = append(regular, p)
		default:
			errs = append(errs, fmt.Errorf("%s: type %q: want only directories and regular files", p, h.Typeflag))
		}
	}
	slices.Sort(regular)
	if want := []string{"/etc/group", "/etc/passwd", spec.Binary()}; !slices.Equal(regular, want) {
		errs = append(errs, fmt.Errorf("regular files %q, want %q", regular, want))
	}
	if !strings.Contains(c.Passwd, fmt.Sprintf("\nistio-proxy:x:%d:%d:", UID, GID)) {
		errs = append(errs, fmt.Errorf("/etc/passwd %q has no istio-proxy with uid and gid %d", c.Passwd, UID))
	}
	if h := c.Files[spec.Binary()]; h != nil && h.Mode&0o111 == 0 {
		errs = append(errs, fmt.Errorf("%s: mode %o, not executable", spec.Binary(), h.Mode))
	}
	if err := staticELF(c.Binary, p.Architecture); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", spec.Binary(), err))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
	"386": elf.EM_386, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// staticELF checks that b is an ELF executable for goarch with no
// interpreter and no shared library needed.
func staticELF(b []byte, goarch string) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer f.Close()
	if want, ok := elfMachine[goarch]; !ok || f.Machine != want {
		return fmt.Errorf("ELF machine %v, want %s's", f.Machine, goarch)
	}
	if f.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF type %v, want a static executable (ET_EXEC)", f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("ELF has a %v program header: dynamically linked", prog.Type)
		}
	}
	return nil
}

// RunsHere reports whether a binary for p runs on this machine.
func RunsHere(p v1.Platform) bool {
	return p.OS == runtime.GOOS && p.Architecture == runtime.GOARCH
}

// RunHelp writes binary to a file in dir, runs it with spec.HelpArgs and
// returns what it printed; an error when it fails or takes over 10 s.
func RunHelp(binary []byte, dir string, spec Spec) (string, error) {
	bin := filepath.Join(dir, spec.Name)
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, spec.HelpArgs...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", spec.Binary(), strings.Join(spec.HelpArgs, " "), err, out)
	}
	return string(out), nil
}

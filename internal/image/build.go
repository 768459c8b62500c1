package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options is one run of Build.
type Options struct {
	GoCmd     string        // the go command; "go" when empty
	ModuleDir string        // the module's root, where go build runs
	OutDir    string        // where the tarballs and layouts go
	Platforms []v1.Platform // the first one's tarball is <name>-<version>.tar
	Meta      Meta
	OCILayout bool      // also write <name>-<version>.oci, an OCI layout of every platform
	Log       io.Writer // progress; none when nil
}

// Output is what Build wrote for one image.
type Output struct {
	Ref      string
	Tarballs []string // docker-archive, one a platform, in Options.Platforms' order
	Layout   string   // the OCI layout's directory, or empty
}

// TarballName is the docker-archive file of spec for the i-th platform:
// <name>-<version>.tar for the first (the one `make image` loads), and
// <name>-<version>-<os>-<arch>[-<variant>].tar for the others.
func TarballName(spec Spec, version string, i int, p v1.Platform) string {
	if i == 0 {
		return spec.Name + "-" + version + ".tar"
	}
	return spec.Name + "-" + version + "-" + strings.ReplaceAll(p.String(), "/", "-") + ".tar"
}

// Build builds spec's binary for every platform, its images, writes them,
// then reads each tarball back with Verify and runs the binary of the
// platform of this machine with spec.HelpArgs.
func Build(ctx context.Context, spec Spec, o Options) (*Output, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	goCmd := o.GoCmd
	if goCmd == "" {
		goCmd = "go"
	}
	ref, err := spec.Ref(o.Meta.Version)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "waypoint-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	out := &Output{Ref: ref.String()}
	var imgs []v1.Image
	for i, p := range o.Platforms {
		start := time.Now()
		bin := filepath.Join(tmp, spec.Name+"-"+strings.ReplaceAll(p.String(), "/", "-"))
		if err := GoBuild(ctx, goCmd, o.ModuleDir, spec, p, bin, o.Meta.Version); err != nil {
			return nil, err
		}
		body, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		img, err := New(spec, p, body, o.Meta)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(o.OutDir, TarballName(spec, o.Meta.Version, i, p))
		if err := WriteTarball(file, ref, img); err != nil {
			return nil, fmt.Errorf("writing %s: %w", file, err)
		}
		c, err := Verify(file, spec, p, ref.String())
		if err != nil {
			return nil, err
		}
		if RunsHere(p) {
			if _, err := RunHelp(c.Binary, tmp, spec); err != nil {
				return nil, err
			}
		}
		digest, _ := img.Digest()
		logf("%s: %s %s (%s, %.1fs)", file, ref, p.String(), digest, time.Since(start).Seconds())
		out.Tarballs = append(out.Tarballs, file)
		imgs = append(imgs, img)
	}
	if o.OCILayout {
		dir := filepath.Join(o.OutDir, spec.Name+"-"+o.Meta.Version+".oci")
		if err := WriteLayout(dir, ref, imgs); err != nil {
			return nil, fmt.Errorf("writing %s: %w", dir, err)
		}
		logf("%s: OCI layout, an index of %d platforms", dir, len(imgs))
		out.Layout = dir
	}
	return out, nil
}

// GitMeta is Meta from the module's VERSION file, else `git describe`,
// else "dev"; the commit; and the commit's time, or SOURCE_DATE_EPOCH
// when set (else the Unix epoch), so that a commit's images are the same
// bytes every time.
func GitMeta(dir string) Meta {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	m := Meta{Created: time.Unix(0, 0).UTC()}
	if b, err := os.ReadFile(filepath.Join(dir, "VERSION")); err == nil {
		m.Version = strings.TrimSpace(string(b))
	}
	if m.Version == "" {
		m.Version = git("describe", "--tags", "--always", "--dirty")
	}
	m.Version = TagSafe(m.Version)
	m.Revision = git("rev-parse", "HEAD")
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		epoch = git("log", "-1", "--format=%ct")
	}
	if s, err := strconv.ParseInt(epoch, 10, 64); err == nil {
		m.Created = time.Unix(s, 0).UTC()
	}
	return m
}

// TagSafe makes v a valid tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, other
// characters replaced by '-'; "dev" when empty.
func TagSafe(v string) string {
	b := []byte(v)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			b[i] = '-'
			if i == 0 {
				b[i] = '_'
			}
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	if len(b) == 0 {
		return "dev"
	}
	return string(b)
}

// Package image builds the container images of the project's binaries
// without Docker (go-containerregistry): an empty base, a layer with
// /etc/passwd and /etc/group naming istio-proxy (uid and gid 1337, the user
// istiod's waypoint template runs the pod as) and the directories the pod
// writes or mounts, and a layer with the static binary, the entrypoint. The
// images are written as docker-archive tarballs (`docker load`,
// `kind load image-archive`) and as an OCI layout holding an index of every
// platform built. cmd/waypoint-image and `make image` drive it.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec says what one image holds: the binary of one main package.
type Spec struct {
	// Name is the image's repository under Registry and the start of its
	// files' names: localhost/<Name>:<version>, <Name>-<version>.tar.
	Name string
	// Package is the main package, as go build takes it from the module's
	// root: ./cmd/waypoint.
	Package string
	// HelpArgs make the binary print its usage and exit 0: the check that
	// the binary in the image runs.
	HelpArgs []string
}

// Images are the images `make image` builds, one line a binary.
var Images = []Spec{
	{Name: "waypoint", Package: "./cmd/waypoint", HelpArgs: []string{"--help"}},
	{Name: "waypoint-controller", Package: "./cmd/waypoint-controller", HelpArgs: []string{"--help"}},
}

// Lookup returns the Spec of Images named name.
func Lookup(name string) (Spec, bool) {
	for _, s := range Images {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Binary is where the binary lies in the image; it is the entrypoint, so
// that the args of istiod's template (`proxy waypoint ...`) follow it.
func (s Spec) Binary() string { return "/usr/local/bin/" + s.Name }

const (
	// Registry is the host part of the images' references. A local name
	// (not a registry's) that tools keep as written: a reference without a
	// host would be completed with Docker Hub's by `docker load`. It
	// contains a "/", as istiod wants of a sidecar.istio.io/proxyImage.
	Registry = "localhost"
	// UID and GID are istio-proxy's, the user and group the image runs as.
	UID = 1337
	GID = 1337
	// User is the config's user, numeric so that runAsNonRoot can check it.
	User = "1337:1337"
	// Source is the org.opencontainers.image.source label.
	Source = "https://github.com/gowaypoint/waypoint"
)

// Meta is what the images say of the build.
type Meta struct {
	Version  string    // the tag and org.opencontainers.image.version
	Revision string    // the commit, org.opencontainers.image.revision; may be empty
	Created  time.Time // the config's created, and every file's mtime (reproducible images)
}

// Ref is the image's reference: localhost/<Name>:<version>.
func (s Spec) Ref(version string) (name.Tag, error) {
	return name.NewTag(Registry+"/"+s.Name+":"+version, name.StrictValidation)
}

// writableDirs are the directories the pod writes or mounts, owned by
// istio-proxy. The pod's root filesystem is read-only: istiod's template
// mounts emptyDirs on /var/lib/istio/data, /etc/istio/proxy and
// /var/run/secrets/workload-spiffe-uds, the token on /var/run/secrets/tokens,
// the root certificate on /var/run/secrets/istio and the pod's labels on
// /etc/istio/pod; /tmp is writable only where the pod mounts something
// there (the template does not).
var writableDirs = []string{
	"/etc/istio/proxy",
	"/etc/istio/pod",
	"/var/lib/istio/data",
	"/var/run/secrets/istio",
	"/var/run/secrets/tokens",
	"/var/run/secrets/workload-spiffe-uds",
	"/var/run/secrets/workload-spiffe-credentials",
}

const passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
	"istio-proxy:x:1337:1337:istio-proxy:/nonexistent:/sbin/nologin\n"

const group = "root:x:0:\n" +
	"istio-proxy:x:1337:\n"

// tarBuilder writes a layer's tar, adding each file's parent directories
// (owned by root) before it.
type tarBuilder struct {
	buf   bytes.Buffer
	tw    *tar.Writer
	mtime time.Time
	dirs  map[string]bool
}

func newTar(mtime time.Time) *tarBuilder {
	b := &tarBuilder{mtime: mtime, dirs: map[string]bool{}}
	b.tw = tar.NewWriter(&b.buf)
	return b
}

func (b *tarBuilder) parents(p string) error {
	dir := path.Dir(p)
	if dir == "/" || b.dirs[dir] {
		return nil
	}
	return b.dir(dir, 0o755, 0, 0)
}

func (b *tarBuilder) dir(p string, mode int64, uid, gid int) error {
	if err := b.parents(p); err != nil {
		return err
	}
	b.dirs[p] = true
	return b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/",
		Mode: mode, Uid: uid, Gid: gid, ModTime: b.mtime, Format: tar.FormatPAX})
}

func (b *tarBuilder) file(p string, mode int64, body []byte) error {
	if err := b.parents(p); err != nil {
		return err
	}
	if err := b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"),
		Mode: mode, Size: int64(len(body)), ModTime: b.mtime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := b.tw.Write(body)
	return err
}

func (b *tarBuilder) layer() (v1.Layer, error) {
	if err := b.tw.Close(); err != nil {
		return nil, err
	}
	data := b.buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// baseLayer holds /etc/passwd, /etc/group, /tmp and writableDirs.
func baseLayer(mtime time.Time) (v1.Layer, error) {
	b := newTar(mtime)
	if err := b.file("/etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := b.file("/etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	if err := b.dir("/tmp", 0o1777, 0, 0); err != nil {
		return nil, err
	}
	for _, d := range writableDirs {
		if err := b.dir(d, 0o755, UID, GID); err != nil {
			return nil, err
		}
	}
	return b.layer()
}

// New assembles the image of spec for platform p around binary, the
// contents of the static executable.
func New(spec Spec, p v1.Platform, binary []byte, m Meta) (v1.Image, error) {
	base, err := baseLayer(m.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: base layer: %w", spec.Name, err)
	}
	b := newTar(m.Created)
	if err := b.file(spec.Binary(), 0o755, binary); err != nil {
		return nil, fmt.Errorf("image %s: binary layer: %w", spec.Name, err)
	}
	bin, err := b.layer()
	if err != nil {
		return nil, fmt.Errorf("image %s: binary layer: %w", spec.Name, err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: m.Created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "waypoint-image: /etc/passwd and /etc/group (istio-proxy, 1337), /tmp, the pod's writable dirs"}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "waypoint-image: " + spec.Binary() + " (go build " + spec.Package + ", CGO_ENABLED=0 -trimpath)"}},
	)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Config.User = User
	cf.Config.Entrypoint = []string{spec.Binary()}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   spec.Name,
		"org.opencontainers.image.source":  Source,
		"org.opencontainers.image.version": m.Version,
		"org.opencontainers.image.created": m.Created.UTC().Format(time.RFC3339),
	}
	if m.Revision != "" {
		cf.Config.Labels["org.opencontainers.image.revision"] = m.Revision
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	return img, nil
}

// GoBuild builds spec's binary for p into out: static (CGO_ENABLED=0),
// -trimpath, run in the module's root dir with goCmd; version, when not
// empty, is set as the main package's version variable (-X main.version,
// which a binary without one ignores), so that a binary can name its own
// image's tag even when built with -buildvcs=false.
func GoBuild(ctx context.Context, goCmd, dir string, spec Spec, p v1.Platform, out, version string) error {
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags="+ldflags, "-o", out, spec.Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", spec.Package, p.String(), err, outb)
	}
	return nil
}

// WriteTarball writes img as a docker-archive tarball tagged ref.
func WriteTarball(file string, ref name.Tag, img v1.Image) error {
	return tarball.WriteToFile(file, ref, img)
}

// WriteLayout writes an OCI layout at dir (replacing one there) holding
// one image index of imgs, each with its platform, annotated with ref.
func WriteLayout(dir string, ref name.Tag, imgs []v1.Image) error {
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		p := cf.Platform()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
		"io.containerd.image.name":          ref.Name(),
	}))
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, err
	}
	if p.OS != "linux" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want linux/ARCH", s)
	}
	return *p, nil
}

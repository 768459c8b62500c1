package image

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// standin is an image of a small static binary in place of the waypoint,
// whose first build (-trimpath, CGO_ENABLED=0) takes minutes; the
// waypoint's own image is built and checked the same way by `make image`,
// and by TestRealImages with WAYPOINT_IMAGE_REAL=1.
var standin = Spec{Name: "standin", Package: "./internal/image/testdata/standin", HelpArgs: []string{"--help"}}

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func moduleDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func testMeta() Meta {
	return Meta{Version: "v0.0.0-test", Revision: "0123abcd", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// TestBuild builds the stand-in's image for linux/amd64 as `make image`
// does and checks the tarball from the outside: its tag, config (user,
// entrypoint, platform, labels), filesystem (passwd, the pod's dirs, no
// shell), and that its binary is a static ELF that runs here.
func TestBuild(t *testing.T) {
	out := t.TempDir()
	o := Options{ModuleDir: moduleDir(t), OutDir: out, Platforms: []v1.Platform{amd64}, Meta: testMeta(), OCILayout: true}
	res, err := Build(context.Background(), standin, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "standin-v0.0.0-test.tar"); !slices.Equal(res.Tarballs, []string{want}) {
		t.Fatalf("tarballs %q, want [%q]", res.Tarballs, want)
	}
	c, err := Verify(res.Tarballs[0], standin, amd64, "localhost/standin:v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config
	if cfg.Config.User != "1337:1337" {
		t.Errorf("User %q", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/standin"}) || cfg.Config.Cmd != nil {
		t.Errorf("Entrypoint %q Cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if len(cfg.Config.Env) != 0 {
		t.Errorf("Env %q, want none", cfg.Config.Env)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/gowaypoint/waypoint",
		"org.opencontainers.image.version":  "v0.0.0-test",
		"org.opencontainers.image.revision": "0123abcd",
	} {
		if got := cfg.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(c.Passwd, "\nistio-proxy:x:1337:1337:") {
		t.Errorf("/etc/passwd %q", c.Passwd)
	}
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/bin"} {
		if c.Files[sh] != nil {
			t.Errorf("%s in the image", sh)
		}
	}
	if h := c.Files["/tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: %+v, want a directory of mode 1777", h)
	}
	for _, d := range []string{"/var/lib/istio/data", "/etc/istio/proxy", "/var/run/secrets/workload-spiffe-uds", "/var/run/secrets/tokens"} {
		if h := c.Files[d]; h == nil || h.Uid != 1337 || h.Gid != 1337 {
			t.Errorf("%s: %+v, want a directory of 1337:1337", d, h)
		}
	}
	f, err := elf.NewFile(bytes.NewReader(c.Binary))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_X86_64 || slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Errorf("binary: machine %v, program headers %v: want a static x86-64 executable", f.Machine, f.Progs)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		help, err := RunHelp(c.Binary, t.TempDir(), standin)
		if err != nil || !strings.Contains(help, "usage: standin v0.0.0-test (linux/amd64)") {
			t.Errorf("%s --help: %q, %v", standin.Binary(), help, err)
		}
	}

	// The OCI layout: one index, of the platform built, named by the tag.
	idx, err := layout.ImageIndexFromPath(res.Layout)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIImageIndex ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v0.0.0-test" {
		t.Fatalf("layout's index.json: %+v", im.Manifests)
	}
	inner, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	innerM, err := inner.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(innerM.Manifests) != 1 || innerM.Manifests[0].Platform == nil || !innerM.Manifests[0].Platform.Equals(amd64) {
		t.Fatalf("image index: %+v", innerM.Manifests)
	}
}

// TestNewReproducible: the same binary and Meta make the same image, byte
// for byte, so a commit's images have one digest.
func TestNewReproducible(t *testing.T) {
	bin := []byte("\x7fELF not really")
	var digests []v1.Hash
	for range 2 {
		img, err := New(standin, amd64, bin, testMeta())
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("digests %v differ", digests)
	}
}

// TestVerifyRefuses: Verify catches a shell, another user, another
// architecture's binary and a tag with Docker Hub's default.
func TestVerifyRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "standin")
	if err := GoBuild(context.Background(), "go", moduleDir(t), standin, amd64, file, ""); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := New(standin, amd64, bin, testMeta())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := standin.Ref("v1")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mutate func(v1.Image) v1.Image
		p      v1.Platform
		ref    string
		want   string
	}{
		"shell": {mutate: func(img v1.Image) v1.Image {
			b := newTar(time.Unix(0, 0))
			if err := b.file("/bin/sh", 0o755, []byte("#!")); err != nil {
				t.Fatal(err)
			}
			l, err := b.layer()
			if err != nil {
				t.Fatal(err)
			}
			img, err = mutate.AppendLayers(img, l)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}, want: "regular files"},
		"root": {mutate: func(img v1.Image) v1.Image {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.Config.User = "0"
			img, err := mutate.ConfigFile(img, cf)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}, want: `user "0"`},
		"good":     {},
		"arch":     {p: v1.Platform{OS: "linux", Architecture: "arm64"}, want: "want linux/arm64"},
		"dockerio": {ref: "waypoint:v1", want: "RepoTags"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			i := img
			if tc.mutate != nil {
				i = tc.mutate(i)
			}
			p := amd64
			if tc.p.Architecture != "" {
				p = tc.p
			}
			want := ref.String()
			if tc.ref != "" {
				want = tc.ref
			}
			file := filepath.Join(t.TempDir(), "img.tar")
			if err := WriteTarball(file, ref, i); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(file, standin, p, want)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRefs: references are localhost/<name>:<version>, never completed
// with a registry's default; versions become valid tags.
func TestRefs(t *testing.T) {
	for _, s := range Images {
		ref, err := s.Ref("v1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		if ref.String() != "localhost/"+s.Name+":v1.2.3" || ref.Name() != ref.String() {
			t.Errorf("%s: ref %s (name %s)", s.Name, ref.String(), ref.Name())
		}
		if st, err := os.Stat(filepath.Join(moduleDir(t), s.Package)); err != nil || !st.IsDir() {
			t.Errorf("%s: package %s: %v", s.Name, s.Package, err)
		}
	}
	for in, want := range map[string]string{
		"v1.2.3": "v1.2.3", "safe-telemetry-85-g31080bb-dirty": "safe-telemetry-85-g31080bb-dirty",
		"": "dev", "-x": "_x", "a/b+c": "a-b-c", ".v": "_v",
	} {
		if got := TagSafe(in); got != want {
			t.Errorf("TagSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRealImages builds the images of Images as `make image` does; a
// first build takes minutes, so only with WAYPOINT_IMAGE_REAL=1.
func TestRealImages(t *testing.T) {
	if os.Getenv("WAYPOINT_IMAGE_REAL") == "" {
		t.Skip("WAYPOINT_IMAGE_REAL unset: `make image` builds and checks these")
	}
	for _, s := range Images {
		o := Options{ModuleDir: moduleDir(t), OutDir: t.TempDir(), Platforms: []v1.Platform{amd64}, Meta: testMeta()}
		if _, err := Build(context.Background(), s, o); err != nil {
			t.Fatal(err)
		}
	}
}

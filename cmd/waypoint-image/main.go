// Command waypoint-image builds the project's container images without
// Docker (internal/image): for each image, a docker-archive tarball a
// platform, bin/images/<name>-<version>.tar for the first (load it with
// `docker load -i` or `kind load image-archive`), and an OCI layout
// <name>-<version>.oci holding an index of every platform. `make image`
// runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/internal/image"
)

func main() {
	var names []string
	for _, s := range image.Images {
		names = append(names, s.Name)
	}
	out := flag.String("out", "bin/images", "directory for the tarballs and layouts")
	version := flag.String("version", "", "the images' tag (default: the VERSION file, else git describe --tags --always --dirty)")
	platforms := flag.String("platforms", "linux/amd64", "platforms, comma-separated; the first one's tarball is <name>-<version>.tar, the others' <name>-<version>-<os>-<arch>.tar")
	images := flag.String("images", strings.Join(names, ","), "the images to build, comma-separated")
	oci := flag.Bool("oci", true, "also write <name>-<version>.oci, an OCI layout with an index of every platform")
	flag.Parse()

	if err := build(*out, *version, *platforms, *images, *oci); err != nil {
		cli.Fatal(err)
	}
}

func build(out, version, platforms, images string, oci bool) error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	o := image.Options{ModuleDir: dir, OutDir: out, Meta: image.GitMeta(dir), OCILayout: oci, Log: os.Stdout}
	if version != "" {
		o.Meta.Version = image.TagSafe(version)
	}
	for _, s := range strings.Split(platforms, ",") {
		p, err := image.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		o.Platforms = append(o.Platforms, p)
	}
	if len(o.Platforms) == 0 {
		return fmt.Errorf("no platform")
	}
	var specs []image.Spec
	for _, n := range strings.Split(images, ",") {
		s, ok := image.Lookup(strings.TrimSpace(n))
		if !ok {
			return fmt.Errorf("no image %q", n)
		}
		specs = append(specs, s)
	}
	for _, s := range specs {
		if _, err := image.Build(context.Background(), s, o); err != nil {
			return err
		}
	}
	return nil
}

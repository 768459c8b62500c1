package certs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// fileStamp is what a Source compares between two polls of one file. A
// Kubernetes secret update changes the inode (the ..data symlink points to
// a new directory); an in-place write changes size or mtime.
type fileStamp struct {
	exists  bool
	size    int64
	mtimeNs int64
	dev     uint64
	ino     uint64
}

// fileStamps are the stamps of a directory's files, in fileNames order.
type fileStamps [3]fileStamp

// statFiles stamps dir's identity files, following symlinks. A file that
// cannot be stat'ed gets a stamp with exists false; the first such error is
// returned with the stamps.
func statFiles(dir string) (fileStamps, error) {
	var st fileStamps
	var errs []error
	for i, name := range fileNames {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dev, ino := fileID(fi)
		st[i] = fileStamp{exists: true, size: fi.Size(), mtimeNs: fi.ModTime().UnixNano(), dev: dev, ino: ino}
	}
	return st, errors.Join(errs...)
}

// readFiles reads dir's identity files, in fileNames order.
func readFiles(dir string) (identityFiles, error) {
	var f identityFiles
	for i, name := range fileNames {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return identityFiles{}, fmt.Errorf("read identity file: %w", err)
		}
		f[i] = b
	}
	return f, nil
}

// equal reports whether f and g hold the same bytes.
func (f identityFiles) equal(g identityFiles) bool {
	for i := range f {
		if !bytes.Equal(f[i], g[i]) {
			return false
		}
	}
	return true
}

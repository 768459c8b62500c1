package importrules

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkg is what `go list -json` tells of a package.
type pkg struct {
	ImportPath string
	Name       string
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test, sorted
}

// rule restricts the module's packages a layer (those under from) may
// depend on: only those under allowed when it is set, else none under
// denied. internal/... is always allowed.
type rule struct {
	from    string
	allowed []string
	denied  []string
	why     string
}

var rules = []rule{
	{from: "protocols", allowed: []string{"protocols"},
		why: "the codecs and the request model sit below everything"},
	{from: "filters", denied: []string{"proxy", "telemetry", "xds", "cmd"},
		why: "a filter gets its stats scope, logger and cluster manager from its filters.BuildContext; telemetry and xds import filters"},
	{from: "telemetry", denied: []string{"proxy", "xds", "cmd"},
		why: "xds decodes telemetry's config, and the proxy records it"},
	{from: "xds", denied: []string{"proxy", "cmd"},
		why: "the config model is decoded without the proxy that applies it (options come in through xds.BuildOptions)"},
}

// cmdLibraries are the directories under cmd/ whose packages need not be
// main packages: helpers of the binaries' wiring (flags, signals), and
// waypointcmd, the public package whose Main the waypoint binary (and a
// custom build with its own filters) calls.
var cmdLibraries = []string{"cmd/internal", "cmd/waypointcmd"}

// under reports whether rel (a path relative to the module) is dir or
// below it.
func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }

// listModule returns the module's path and its packages.
func listModule(t *testing.T) (string, []pkg) {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}\n{{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir, mod, _ := strings.Cut(strings.TrimSpace(string(root)), "\n")
	statSources(t, dir)
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Name,Imports,Deps", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list ./...: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package")
	}
	return mod, pkgs
}

// statSources stats the module's go.mod and Go files (nested modules,
// testdata and bin left out). go test caches a passing result until a file
// the test itself opened or stat'ed changes; the reads of the go list it
// runs are not seen, so without this an import added later would find the
// result cached.
func statSources(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch name := d.Name(); {
			case path == root:
			case name == "testdata" || name == "bin" || strings.HasPrefix(name, "."):
				return filepath.SkipDir
			default:
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || path == filepath.Join(root, "go.mod") {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImportRules checks every package of the module against the rules of
// the package doc, naming for a violation the chain of imports that leads
// to the forbidden package.
func TestImportRules(t *testing.T) {
	mod, pkgs := listModule(t)
	byPath := make(map[string]pkg, len(pkgs))
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	rel := func(path string) (string, bool) {
		if path == mod {
			return "", true
		}
		r, ok := strings.CutPrefix(path, mod+"/")
		return r, ok
	}
	checked := 0
	for _, p := range pkgs {
		from, _ := rel(p.ImportPath)
		for _, r := range rules {
			if !under(from, r.from) {
				continue
			}
			checked++
			for _, dep := range p.Deps {
				to, ours := rel(dep)
				if !ours || under(to, "internal") {
					continue
				}
				bad := slices.ContainsFunc(r.denied, func(d string) bool { return under(to, d) })
				if r.allowed != nil {
					bad = !slices.ContainsFunc(r.allowed, func(a string) bool { return under(to, a) })
				}
				if bad {
					t.Errorf("%s imports %s (%s): %s/... must not depend on it: %s",
						from, to, strings.Join(chain(byPath, p.ImportPath, dep, mod), " → "), r.from, r.why)
				}
			}
		}
		if under(from, "cmd") && !slices.ContainsFunc(cmdLibraries, func(d string) bool { return under(from, d) }) && p.Name != "main" {
			t.Errorf("%s is package %s: cmd/... only wires, in main packages (put the code in a package of its layer)", from, p.Name)
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked: the rules name no directory of the module")
	}
}

// chain returns a shortest chain of direct imports from one package to
// another, as paths relative to the module.
func chain(byPath map[string]pkg, from, to, mod string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			break
		}
		for _, next := range byPath[cur].Imports {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	var out []string
	for cur := to; cur != ""; cur = prev[cur] {
		out = append(out, strings.TrimPrefix(cur, mod+"/"))
		if _, ok := prev[cur]; !ok {
			break
		}
	}
	slices.Reverse(out)
	return out
}

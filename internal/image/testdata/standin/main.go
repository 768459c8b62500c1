// Command standin is the small static binary internal/image's tests put in
// an image in place of the waypoint (whose first build takes minutes): it
// prints its usage for --help, as the waypoint does, with the version the
// image's build gave it.
package main

import (
	"os"
	"runtime"
)

// version is set by the image's build (-X main.version).
var version string

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--help" {
		os.Stdout.WriteString("usage: standin " + version + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")\n")
		return
	}
	os.Exit(2)
}

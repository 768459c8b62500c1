// Command standin is the small static binary internal/image's tests put in
// an image in place of the waypoint (whose first build takes minutes): it
// prints its usage for --help, as the waypoint does.
package main

import (
	"os"
	"runtime"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--help" {
		os.Stdout.WriteString("usage: standin (" + runtime.GOOS + "/" + runtime.GOARCH + ")\n")
		return
	}
	os.Exit(2)
}

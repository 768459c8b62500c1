// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version this module
// pins, for the local control plane of the end-to-end tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }

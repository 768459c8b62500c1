//go:build tools

// Package kube pins the commands of the local control plane's Kubernetes side: kube-apiserver
// and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd. Nothing here is product code;
// e2e/cluster builds these into bin/cluster.
package kube

import (
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)

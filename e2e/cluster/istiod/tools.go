//go:build tools

// Package istiod pins Istio's control plane for the local control plane of the end-to-end tests:
// pilot-discovery from istio.io/istio at the development snapshot that ../shared/istiod was
// generated with. It is a test harness's dependency only, never the product's.
package istiod

import _ "istio.io/istio/pilot/cmd/pilot-discovery"

//go:build tools

// Package istioctl pins istioctl for the live tests of the admin endpoints: built from
// istio.io/istio at the same development snapshot as ../istiod's pilot-discovery (its own
// module, so that istioctl's extra dependencies leave pilot-discovery's build and its stamp
// alone). It is a test harness's dependency only, never the product's.
package istioctl

import _ "istio.io/istio/istioctl/cmd/istioctl"

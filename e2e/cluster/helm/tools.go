//go:build tools

// Package helm pins the helm CLI for the control plane's build and the chart's live test: the
// pinned Istio's istiod chart is rendered with it into the injector templates istiod reads,
// and charts/waypoint-controller is linted and rendered with it. A module of its own, so that
// helm's dependencies leave pilot-discovery's and kube-apiserver's builds and stamps alone. It
// is a test harness's dependency only, never the product's.
package helm

import _ "helm.sh/helm/v4/cmd/helm"

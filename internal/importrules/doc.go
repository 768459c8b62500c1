// Package importrules holds the test of the module's layering (see
// docs/architecture.md, "Packages and who may import whom"): which of the
// module's packages each layer may depend on, directly or not, as
// `go list -deps` sees the packages' non-test code. It has no code of its
// own.
//
//   - protocols/... depends on no package of the module but protocols/...
//     (and internal/...): the codecs and the request model sit below
//     everything.
//   - filters/... depends on no proxy/..., telemetry/..., xds/... or
//     cmd/...: a filter gets its stats scope, logger and cluster manager
//     from its filters.BuildContext.
//   - telemetry/... depends on no proxy/..., xds/... or cmd/....
//   - xds/... depends on no proxy/... or cmd/....
//   - cmd/... only wires: its packages are main packages (cmd/internal/...
//     excepted: flag and signal helpers; see cmdLibraries).
//
// internal/... may be imported from anywhere.
package importrules

package xds

import "google.golang.org/protobuf/reflect/protoreflect"

// checkSupported reports the first populated field of m, or of a message
// nested in it, that the allowlist does not name.
func checkSupported(m protoreflect.Message) error { return allowlist.Check(m) }

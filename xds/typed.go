package xds

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// typeURLPrefix is the prefix of every type URL Envoy and istiod write.
const typeURLPrefix = "type.googleapis.com/"

// nameOf is the full name of m's message type, as compared against
// anypb.Any.MessageName.
func nameOf(m proto.Message) protoreflect.FullName {
	return m.ProtoReflect().Descriptor().FullName()
}

// typeURL is the type URL Envoy uses for m's message type.
func typeURL(m proto.Message) string { return typeURLPrefix + string(nameOf(m)) }

// unpack decodes a into m, whose type the caller has already matched against
// a's type URL, then checks m against the allowlist and its PGV rules.
// Errors are relative to m (the caller adds "typed_config").
func unpack(a *anypb.Any, m proto.Message) error {
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
	}
	if err := checkSupported(m.ProtoReflect()); err != nil {
		return err
	}
	return validate(m)
}

// validate runs the protoc-gen-validate rules generated for m, if any.
func validate(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}

// errRequired is the reason given for a missing field the waypoint needs.
var errRequired = errors.New("required")

// duration converts an optional Duration; see pbcheck.Duration.
var duration = pbcheck.Duration

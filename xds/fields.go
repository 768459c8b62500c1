package xds

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkSupported walks the populated fields of m and of the messages nested in
// it, and reports the first one the allowlist does not name ("<path>: not
// supported yet") or the first unknown field. Fields are visited in
// declaration order and map entries in key order, so the error is
// deterministic. Any fields are not opened: the decoder that unpacks one calls
// checkSupported on its contents.
func checkSupported(m protoreflect.Message) error {
	md := m.Descriptor()
	allowed, ok := allowlist[md.FullName()]
	if !ok {
		return fmt.Errorf("message type %s is not supported yet", md.FullName())
	}
	if u := m.GetUnknown(); len(u) > 0 {
		num, _, _ := protowire.ConsumeTag(u)
		return fmt.Errorf("unknown field number %d in %s (from a newer API?)", num, md.FullName())
	}
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		name := string(fd.Name())
		mode, ok := allowed[name]
		if !ok {
			return &fieldError{path: name, err: errNotSupported}
		}
		if mode == opaque {
			continue
		}
		if err := checkField(m.Get(fd), fd, name); err != nil {
			return err
		}
	}
	return nil
}

// checkField descends into the message value(s) of one populated field.
func checkField(v protoreflect.Value, fd protoreflect.FieldDescriptor, name string) error {
	switch {
	case fd.IsMap():
		if !isWalked(fd.MapValue().Message()) {
			return nil
		}
		mp := v.Map()
		keys := make([]string, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k.String())
			return true
		})
		slices.Sort(keys)
		for _, k := range keys {
			mk := protoreflect.ValueOfString(k).MapKey()
			if fd.MapKey().Kind() != protoreflect.StringKind {
				// Only string-keyed maps of messages occur in the allowed types.
				return errAt(name, "map keyed by %s is not supported yet", fd.MapKey().Kind())
			}
			if err := checkSupported(mp.Get(mk).Message()); err != nil {
				return at(key(name, k), err)
			}
		}
	case !isWalked(fd.Message()):
	case fd.IsList():
		l := v.List()
		for j := 0; j < l.Len(); j++ {
			if err := checkSupported(l.Get(j).Message()); err != nil {
				return at(idx(name, j), err)
			}
		}
	default:
		if err := checkSupported(v.Message()); err != nil {
			return at(name, err)
		}
	}
	return nil
}

// isWalked reports whether values of message type md are checked field by
// field: every message type but scalars and google.protobuf's well-known types.
func isWalked(md protoreflect.MessageDescriptor) bool {
	return md != nil && md.ParentFile().Package() != "google.protobuf"
}

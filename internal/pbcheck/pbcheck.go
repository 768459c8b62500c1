// Package pbcheck enforces "anything set that we do not implement is an
// error" on Envoy protos: a decoder lists, per message type, the fields it
// implements, and Check reports the first populated field outside that list
// with its path ("filter_chains[2].filters[0].name: not supported yet").
// It also carries the field-path errors every decoder uses, so that xds and
// the filters report errors the same way.
package pbcheck

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Mode says how Check treats an allowed field.
type Mode uint8

const (
	// Descend checks the nested message(s) too.
	Descend Mode = iota
	// Opaque allows the field with any contents.
	Opaque
)

// Fields is the set of fields of one message type a decoder implements.
type Fields map[string]Mode

// F builds a Fields. A name ending in "*" is Opaque: the field is allowed
// with any contents (metadata, node, an SDS source we do not dial).
func F(names ...string) Fields {
	s := make(Fields, len(names))
	for _, n := range names {
		if n[len(n)-1] == '*' {
			s[n[:len(n)-1]] = Opaque
		} else {
			s[n] = Descend
		}
	}
	return s
}

// Allowlist maps each accepted message type to the fields implemented.
// Messages of the google.protobuf package (Duration, wrappers, Any, Struct)
// are leaves: the contents of an Any are checked by the decoder that
// unpacks it. An Allowlist is read-only once built.
type Allowlist map[protoreflect.FullName]Fields

// Merge returns a new Allowlist with the entries of all lists.
func Merge(lists ...Allowlist) Allowlist {
	out := Allowlist{}
	for _, l := range lists {
		maps.Copy(out, l)
	}
	return out
}

// ErrNotSupported is the reason given for a populated field that is not
// implemented.
var ErrNotSupported = errors.New("not supported yet")

// Check walks the populated fields of m and of the messages nested in it,
// and reports the first one the allowlist does not name, or the first
// unknown field. Fields are visited in declaration order and map entries
// in key order, so the error is deterministic.
func (a Allowlist) Check(m protoreflect.Message) error {
	md := m.Descriptor()
	allowed, ok := a[md.FullName()]
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
			return &FieldError{Path: name, Err: ErrNotSupported}
		}
		if mode == Opaque {
			continue
		}
		if err := a.checkField(m.Get(fd), fd, name); err != nil {
			return err
		}
	}
	return nil
}

// checkField descends into the message value(s) of one populated field.
func (a Allowlist) checkField(v protoreflect.Value, fd protoreflect.FieldDescriptor, name string) error {
	switch {
	case fd.IsMap():
		if !isWalked(fd.MapValue().Message()) {
			return nil
		}
		if fd.MapKey().Kind() != protoreflect.StringKind {
			return ErrAt(name, "map keyed by %s is not supported yet", fd.MapKey().Kind())
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
			if err := a.Check(mp.Get(mk).Message()); err != nil {
				return At(Key(name, k), err)
			}
		}
	case !isWalked(fd.Message()):
	case fd.IsList():
		l := v.List()
		for j := 0; j < l.Len(); j++ {
			if err := a.Check(l.Get(j).Message()); err != nil {
				return At(Idx(name, j), err)
			}
		}
	default:
		if err := a.Check(v.Message()); err != nil {
			return At(name, err)
		}
	}
	return nil
}

// isWalked reports whether values of message type md are checked field by
// field: every message type but scalars and google.protobuf's well-known
// types.
func isWalked(md protoreflect.MessageDescriptor) bool {
	return md != nil && md.ParentFile().Package() != "google.protobuf"
}

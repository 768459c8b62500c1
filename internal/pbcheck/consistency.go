package pbcheck

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Verify checks an allowlist against the message types its decoder starts
// from: every listed field exists, every message type reachable through
// allowed fields has an entry (otherwise a config using it would be refused
// with an unhelpful "message type ... not supported"), and every entry is
// reachable. Tests call it; it returns every problem found.
func (a Allowlist) Verify(roots ...protoreflect.MessageDescriptor) []error {
	var errs []error
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || !isWalked(md) {
			return
		}
		seen[md.FullName()] = true
		allowed, ok := a[md.FullName()]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is reachable through allowed fields but has no allowlist entry", md.FullName()))
			return
		}
		for name, mode := range allowed {
			fd := md.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				errs = append(errs, fmt.Errorf("allowlist: %s has no field %q", md.FullName(), name))
				continue
			}
			if mode == Opaque {
				continue
			}
			switch {
			case fd.IsMap():
				if v := fd.MapValue().Message(); v != nil {
					visit(v)
				}
			case fd.Message() != nil:
				visit(fd.Message())
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	for name := range a {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("allowlist entry %s is not reachable from any decoded type", name))
		}
	}
	return errs
}

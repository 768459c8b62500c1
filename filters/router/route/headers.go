package route

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// appendAction is what a header addition does when the header exists,
// after core.v3.HeaderValueOption.HeaderAppendAction.
type appendAction uint8

const (
	// appendIfExistsOrAdd adds another field (Envoy's default).
	appendIfExistsOrAdd appendAction = iota
	// addIfAbsent adds the field only when the header is absent.
	addIfAbsent
	// overwriteIfExistsOrAdd replaces every field of the name, or adds one.
	overwriteIfExistsOrAdd
	// overwriteIfExists replaces the fields of the name only when present.
	overwriteIfExists
)

var appendActions = map[corev3.HeaderValueOption_HeaderAppendAction]appendAction{
	corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:    appendIfExistsOrAdd,
	corev3.HeaderValueOption_ADD_IF_ABSENT:              addIfAbsent,
	corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD: overwriteIfExistsOrAdd,
	corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:        overwriteIfExists,
}

// headerAdd is one compiled HeaderValueOption.
type headerAdd struct {
	name      string
	value     formatter
	action    appendAction
	keepEmpty bool
}

// headerMutation is one level's headers_to_add and headers_to_remove.
type headerMutation struct {
	remove []string
	add    []headerAdd
}

// compileHeaderMutation compiles one level's additions and removals;
// addField and removeField name the fields for errors. It returns nil when
// there is nothing to do.
func compileHeaderMutation(adds []*corev3.HeaderValueOption, removes []string, addField, removeField string) (*headerMutation, error) {
	if len(adds) == 0 && len(removes) == 0 {
		return nil, nil
	}
	m := &headerMutation{}
	for i, name := range removes {
		name = toLower(name)
		if !modifiable(name) {
			return nil, pbcheck.ErrAt(pbcheck.Idx(removeField, i), "%q may not be removed (pseudo-headers and host are not modifiable)", name)
		}
		m.remove = append(m.remove, name)
	}
	for i, o := range adds {
		a, err := compileHeaderAdd(o)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx(addField, i), err)
		}
		m.add = append(m.add, a)
	}
	return m, nil
}

func compileHeaderAdd(o *corev3.HeaderValueOption) (headerAdd, error) {
	a := headerAdd{name: toLower(o.GetHeader().GetKey()), keepEmpty: o.GetKeepEmptyValue()}
	if o.GetHeader() == nil {
		return a, pbcheck.ErrAt("header", "required")
	}
	if !modifiable(a.name) {
		return a, pbcheck.ErrAt("header.key", "%q may not be modified (pseudo-headers and host are not modifiable)", a.name)
	}
	act, ok := appendActions[o.GetAppendAction()]
	if !ok {
		return a, pbcheck.ErrAt("append_action", "unknown action %v", o.GetAppendAction())
	}
	if o.GetAppend() != nil {
		if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			return a, pbcheck.ErrAt("append", "must not be set with append_action")
		}
		if !o.GetAppend().GetValue() {
			act = overwriteIfExistsOrAdd
		}
	}
	a.action = act
	raw := o.GetHeader().GetValue()
	field := "header.value"
	if rv := o.GetHeader().GetRawValue(); len(rv) > 0 {
		if raw != "" {
			return a, pbcheck.ErrAt("header.raw_value", "must not be set with value")
		}
		raw, field = string(rv), "header.raw_value"
	}
	f, err := parseFormat(raw)
	if err != nil {
		return a, pbcheck.At(field, err)
	}
	a.value = f
	return a, nil
}

// modifiable reports whether route config may add or remove a header:
// pseudo-headers and host are refused, as Envoy's isModifiableHeader.
func modifiable(name string) bool {
	return name != "" && name[0] != ':' && name != "host"
}

// apply removes, then adds, as Envoy's HeaderParser::evaluateHeaders. A
// value that formats to "" is skipped unless keep_empty_value.
func (m *headerMutation) apply(h *l7.Header, c *fmtCtx, scratch *[]byte) {
	for _, name := range m.remove {
		h.Del(name)
	}
	for i := range m.add {
		a := &m.add[i]
		v := a.value.literal
		if !a.value.isLiteral() {
			*scratch = a.value.appendTo((*scratch)[:0], c)
			v = transientString(*scratch)
		}
		if v == "" && !a.keepEmpty {
			continue
		}
		switch a.action {
		case appendIfExistsOrAdd:
			h.Add(a.name, v)
		case addIfAbsent:
			if !h.Has(a.name) {
				h.Add(a.name, v)
			}
		case overwriteIfExistsOrAdd:
			h.Set(a.name, v)
		case overwriteIfExists:
			if h.Has(a.name) {
				h.Set(a.name, v)
			}
		}
	}
}

// needsScratch reports whether apply formats anything.
func (m *headerMutation) needsScratch() bool {
	for i := range m.add {
		if !m.add[i].value.isLiteral() {
			return true
		}
	}
	return false
}

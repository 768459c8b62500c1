package dubbo

import (
	"bytes"
	"unsafe"

	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Names of the header entries FillRequest adds besides the attachments.
// They are views: changing them changes nothing in the body (to change
// the group, set the "group" header, which is the attachment).
const (
	HeaderDubboVersion   = ":dubbo-version"
	HeaderGroup          = ":dubbo-group"
	HeaderServiceVersion = ":dubbo-service-version"
)

var (
	nameDubboVersion   = []byte(HeaderDubboVersion)
	nameGroup          = []byte(HeaderGroup)
	nameServiceVersion = []byte(HeaderServiceVersion)
)

// viewField is a field FillRequest put in the header: name and value as
// given to AddBytes, and the attachment it shows (-1 for the ":dubbo-"
// entries).
type viewField struct {
	name, value []byte
	att         int
}

// FillRequest resets req and fills it from inv (after DecodeRequest), as
// the request model carries a Dubbo call:
//
//   - Method is the Dubbo method, as a string from names (nil: a new
//     string each call);
//   - Path is "/<service>/<method>", the service as Service returns it
//     (what the Java provider resolves: normally the interface name);
//   - Header holds ":dubbo-version" (the protocol version),
//     ":dubbo-service-version" (ServiceVersion) and ":dubbo-group" (when
//     there is a group), then every attachment whose key and value are
//     strings, key lower-cased as in the rest of the model (and as Envoy's
//     dubbo_proxy matches attachments as headers);
//   - Proto is l7.Dubbo; Authority, Scheme and Body are left empty.
//
// Keys are case-sensitive in Dubbo. Where two keys lower-case alike, the
// one already lower-case is shown, else the first; the other stays in the
// body, untouched and unseen. The header refers to the body and to inv's
// storage (valid as long as inv's slices are), and HeaderChanged and
// AttachmentsFor map it back.
func (inv *Invocation) FillRequest(req *l7.Request, names *Interner) {
	req.Reset()
	if names != nil {
		req.Method = names.String(inv.Method)
	} else {
		req.Method = string(inv.Method)
	}
	p := len(inv.scratch)
	inv.scratch = append(inv.scratch, '/')
	inv.scratch = append(inv.scratch, inv.Service()...)
	inv.scratch = append(inv.scratch, '/')
	inv.scratch = append(inv.scratch, inv.Method...)
	req.SetPath(inv.scratch[p:])
	inv.scratch = inv.scratch[:p]
	req.Proto = l7.Dubbo

	inv.view = inv.view[:0]
	inv.add(&req.Header, nameDubboVersion, inv.DubboVersion, -1)
	inv.add(&req.Header, nameServiceVersion, inv.ServiceVersion(), -1)
	if g := inv.Group(); g != nil {
		inv.add(&req.Header, nameGroup, g, -1)
	}
	for i := range inv.Attachments {
		a := &inv.Attachments[i]
		if !a.IsString() || len(a.Key) == 0 {
			continue
		}
		if isLower(a.Key) {
			inv.add(&req.Header, a.Key, a.Value, i)
			continue
		}
		p := len(inv.scratch)
		inv.scratch = appendLower(inv.scratch, a.Key)
		name := inv.scratch[p:len(inv.scratch):len(inv.scratch)]
		if inv.shadowed(name) {
			inv.scratch = inv.scratch[:p]
			continue
		}
		inv.add(&req.Header, name, a.Value, i)
	}
}

func (inv *Invocation) add(h *l7.Header, name, value []byte, att int) {
	h.AddBytes(name, value)
	inv.view = append(inv.view, viewField{name: name, value: value, att: att})
}

// shadowed reports whether a lower-cased key loses to another: an
// attachment whose key is exactly name, or one shown already.
func (inv *Invocation) shadowed(name []byte) bool {
	if i := inv.atts.find(name); i >= 0 && inv.Attachments[i].IsString() {
		return true
	}
	for _, v := range inv.view {
		if v.att >= 0 && bytes.Equal(v.name, name) {
			return true
		}
	}
	return false
}

// HeaderChanged reports whether h is not as FillRequest left it: a field
// added, removed, moved or given another value (even an equal one). It
// compares slices, not bytes: a few word comparisons per field. When it
// reports false, the request's frame can be forwarded as it came.
func (inv *Invocation) HeaderChanged(h *l7.Header) bool {
	fs := h.Fields()
	if len(fs) != len(inv.view) {
		return true
	}
	for i := range fs {
		if !same(fs[i].Name, inv.view[i].name) || !same(fs[i].Value, inv.view[i].value) {
			return true
		}
	}
	return false
}

// Marks of AttachmentsFor, per attachment.
const (
	markHidden  int8 = iota // not in the header: kept as it came
	markShown               // in the header, not found there yet
	markKept                // found unchanged
	markChanged             // found with another value
)

// AttachmentsFor returns, appended to dst, the attachments to encode for
// header h (the request's header after the filters, FillRequest's
// before): for AppendFrame when HeaderChanged. Attachments keep their
// order and key case; one whose field a filter deleted is dropped, one
// whose value it changed (Set, or Del then Add of the same lower-cased
// name) takes the new value, and fields it added are appended, keys as the
// header has them. Where a name appears more than once, the first value is
// written, the one Header.Get returns and routing saw. Attachments not
// shown in the header (non-string values, shadowed keys) are kept as they
// came, and so is the order of those that are not strings. The ":dubbo-"
// entries are ignored.
func (inv *Invocation) AttachmentsFor(h *l7.Header, dst []Attachment) []Attachment {
	fs := h.Fields()
	n := len(inv.Attachments)
	marks := inv.marks[:0]
	for range n + len(fs) {
		marks = append(marks, markHidden)
	}
	inv.marks = marks
	used := marks[n:] // per header field: 1 once written
	for _, v := range inv.view {
		if v.att >= 0 {
			marks[v.att] = markShown
		}
	}
	for i := range fs {
		j := inv.shownAs(fs[i].Name)
		if j < 0 || marks[j] != markShown {
			continue
		}
		if same(fs[i].Value, inv.viewOf(j).value) {
			marks[j] = markKept
		} else {
			marks[j] = markChanged
		}
		used[i] = 1
	}
	for j := range inv.Attachments {
		a := inv.Attachments[j]
		switch marks[j] {
		case markHidden, markKept:
			dst = append(dst, a)
		case markChanged:
			dst = append(dst, Attachment{Key: a.Key, Value: inv.valueOf(fs, j), Kind: a.Kind})
		case markShown: // deleted, unless a field of its name was added
			name := inv.viewOf(j).name
			for i := range fs {
				if used[i] == 0 && bytes.Equal(fs[i].Name, name) {
					used[i] = 1
					dst = append(dst, Attachment{Key: a.Key, Value: fs[i].Value, Kind: a.Kind})
					break
				}
			}
		}
	}
	for i := range fs {
		f := fs[i]
		if used[i] != 0 || len(f.Name) == 0 || f.Name[0] == ':' || hasKey(dst, f.Name) {
			continue
		}
		dst = append(dst, Attachment{Key: f.Name, Value: f.Value, Kind: hessian2.String})
	}
	return dst
}

// shownAs returns the attachment whose header field has this very name
// slice, or -1.
func (inv *Invocation) shownAs(name []byte) int {
	for _, v := range inv.view {
		if v.att >= 0 && same(v.name, name) {
			return v.att
		}
	}
	return -1
}

// viewOf returns the view field of attachment j, which is shown.
func (inv *Invocation) viewOf(j int) viewField {
	for _, v := range inv.view {
		if v.att == j {
			return v
		}
	}
	return viewField{}
}

// valueOf returns the value of the first field showing attachment j.
func (inv *Invocation) valueOf(fs []l7.Field, j int) []byte {
	name := inv.viewOf(j).name
	for _, f := range fs {
		if same(f.Name, name) {
			return f.Value
		}
	}
	return nil
}

func hasKey(atts []Attachment, k []byte) bool {
	for i := range atts {
		if !atts[i].NonStringKey && bytes.Equal(atts[i].Key, k) {
			return true
		}
	}
	return false
}

// same reports whether a and b are the same slice of the same memory.
func same(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

func isLower(b []byte) bool {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}

func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

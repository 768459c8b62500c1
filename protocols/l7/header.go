package l7

// Field is one header field. Name is lower-case. Both slices may point into
// a codec's read buffer or the Header's arena: valid until the stream ends
// or the Header is reset, and never to be modified in place.
type Field struct {
	Name, Value []byte
}

// Header is an ordered list of header fields, duplicates kept in order.
// The zero value is an empty header. Adding a field copies name and value
// into an arena the Header reuses across Reset, so that a steady stream of
// requests adds no allocation.
type Header struct {
	fields []Field
	arena  []byte
}

// Reset empties h, keeping its storage for reuse.
func (h *Header) Reset() {
	clear(h.fields)
	h.fields = h.fields[:0]
	h.arena = h.arena[:0]
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.fields) }

// At returns the i-th field.
func (h *Header) At(i int) Field { return h.fields[i] }

// Fields returns the fields in order. The slice is h's own: read it, do not
// keep it past the next change to h.
func (h *Header) Fields() []Field { return h.fields }

// Get returns the first value of the lower-case name.
func (h *Header) Get(name string) ([]byte, bool) {
	for i := range h.fields {
		if string(h.fields[i].Name) == name {
			return h.fields[i].Value, true
		}
	}
	return nil, false
}

// GetString is Get as a string; "" when absent. It allocates when found.
func (h *Header) GetString(name string) string {
	v, _ := h.Get(name)
	return string(v)
}

// Has reports whether the lower-case name is present.
func (h *Header) Has(name string) bool {
	_, ok := h.Get(name)
	return ok
}

// Count returns how many fields have the lower-case name.
func (h *Header) Count(name string) int {
	n := 0
	for i := range h.fields {
		if string(h.fields[i].Name) == name {
			n++
		}
	}
	return n
}

// Add appends a field, copying name (which should be lower-case: see the
// package doc) and value.
func (h *Header) Add(name, value string) {
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	h.arena = append(h.arena, value...)
	a := h.arena[start:len(h.arena):len(h.arena)]
	h.fields = append(h.fields, Field{Name: a[:len(name):len(name)], Value: a[len(name):]})
}

// AddBytes appends a field without copying: name and value must stay valid
// and unchanged as long as h holds them. Codecs use it for fields that live
// in their read buffer; name must be lower-case.
func (h *Header) AddBytes(name, value []byte) {
	h.fields = append(h.fields, Field{Name: name, Value: value})
}

// Set replaces every field of the lower-case name with one field, in the
// place of the first one (or at the end).
func (h *Header) Set(name, value string) {
	i := h.index(name)
	if i < 0 {
		h.Add(name, value)
		return
	}
	start := len(h.arena)
	h.arena = append(h.arena, value...)
	h.fields[i].Value = h.arena[start:len(h.arena):len(h.arena)]
	h.delFrom(name, i+1)
}

// SetBytes is Set with a value given as bytes, copied into the arena (no
// intermediate string).
func (h *Header) SetBytes(name string, value []byte) {
	i := h.index(name)
	start := len(h.arena)
	if i < 0 {
		h.arena = append(h.arena, name...)
	}
	h.arena = append(h.arena, value...)
	a := h.arena[start:len(h.arena):len(h.arena)]
	if i < 0 {
		h.fields = append(h.fields, Field{Name: a[:len(name):len(name)], Value: a[len(name):]})
		return
	}
	h.fields[i].Value = a
	h.delFrom(name, i+1)
}

// Del removes every field of the lower-case name.
func (h *Header) Del(name string) { h.delFrom(name, 0) }

func (h *Header) index(name string) int {
	for i := range h.fields {
		if string(h.fields[i].Name) == name {
			return i
		}
	}
	return -1
}

func (h *Header) delFrom(name string, from int) {
	out := h.fields[:from]
	for _, f := range h.fields[from:] {
		if string(f.Name) != name {
			out = append(out, f)
		}
	}
	clear(h.fields[len(out):])
	h.fields = out
}

// nameChars maps each token character (RFC 9110 §5.6.2), which a field
// name is made of, to its lower-case form, and anything else to 0.
var nameChars = func() (t [256]byte) {
	for c := range 256 {
		b := byte(c)
		switch {
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9':
			t[c] = b
		case 'A' <= b && b <= 'Z':
			t[c] = b + 'a' - 'A'
		default:
			for i := 0; i < len("!#$%&'*+-.^_`|~"); i++ {
				if "!#$%&'*+-.^_`|~"[i] == b {
					t[c] = b
				}
			}
		}
	}
	return t
}()

// CheckNames looks at every field name of h for a codec about to send it.
// bad is the index of the first field whose name is not a non-empty token,
// which no message may carry; -1 when every name is one. upper reports
// whether a name has an upper-case letter: names in the model are
// lower-case, but Set and Add keep what a filter gives them, so a codec
// whose protocol wants lower-case names (HTTP/2) lower-cases them
// (AppendLower) when upper is true. It does not allocate.
func (h *Header) CheckNames() (upper bool, bad int) {
	var diff byte // a bit of an upper-case letter's difference from its lower case
	for i := range h.fields {
		name := h.fields[i].Name
		if len(name) == 0 {
			return diff != 0, i
		}
		for _, b := range name {
			l := nameChars[b]
			if l == 0 {
				return diff != 0, i
			}
			diff |= l ^ b
		}
	}
	return diff != 0, -1
}

// AppendLower appends name to dst with its upper-case ASCII letters
// lower-cased.
func AppendLower(dst, name []byte) []byte {
	for _, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// CopyFrom makes h a copy of src, with its own storage.
func (h *Header) CopyFrom(src *Header) {
	h.Reset()
	for _, f := range src.fields {
		start := len(h.arena)
		h.arena = append(h.arena, f.Name...)
		h.arena = append(h.arena, f.Value...)
		a := h.arena[start:len(h.arena):len(h.arena)]
		h.fields = append(h.fields, Field{Name: a[:len(f.Name):len(f.Name)], Value: a[len(f.Name):]})
	}
}

// Detach copies every field that does not live in h's arena into it, so
// that h no longer refers to a codec's buffer (e.g. before the buffer is
// reused while h is still needed for a retry).
func (h *Header) Detach() {
	var tmp Header
	tmp.CopyFrom(h)
	h.fields, h.arena = tmp.fields, tmp.arena
}

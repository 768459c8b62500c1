package dubbo

import (
	"bytes"

	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
)

// Attachment is one entry of an attachments map: Dubbo's per-call
// metadata (path, interface, version, group, timeout, tracing ids...).
// Keys are case-sensitive, as in Java's HashMap.
type Attachment struct {
	// Key is the key, UTF-8; nil when NonStringKey.
	Key []byte
	// Value is the value, UTF-8, when Kind is hessian2.String; nil
	// otherwise.
	Value []byte
	// Kind is the kind of the value: String mostly, Null, or any other
	// (an object's class definition counts as Object).
	Kind hessian2.Kind
	// NonStringKey marks an entry whose key is not a string: only its Raw
	// bytes are kept.
	NonStringKey bool
	// Raw is the entry, key then value, as encoded in the body it was
	// decoded from; nil for an entry made by the proxy. An entry with Raw
	// is written back byte for byte.
	Raw []byte
}

// IsString reports whether a is a string key with a string value.
func (a *Attachment) IsString() bool { return !a.NonStringKey && a.Kind == hessian2.String }

// attachmentSet is the decoded attachments of one body, with the storage
// its decoded strings live in.
type attachmentSet struct {
	list []Attachment
	// mapStart is the map's own start as encoded ('H', or 'M' and its
	// type), written back before the entries; nil if the body had no map.
	mapStart []byte
}

// decodeMap reads an attachments map at r (or a null, or nothing at the
// end of the body), appending its entries to s and decoded strings to
// scratch. Duplicate string keys are refused: Java would keep the last,
// a proxy reading the first would route on a value the provider never
// sees.
func (s *attachmentSet) decodeMap(r *hessian2.Reader, body []byte, scratch []byte, max int, part string) ([]byte, error) {
	s.list, s.mapStart = s.list[:0], nil
	if r.Len() == 0 || r.ReadNull() {
		return scratch, nil
	}
	start := r.Offset()
	if err := r.ReadMapStart(); err != nil {
		return scratch, bodyErr(part, err)
	}
	s.mapStart = body[start:r.Offset():r.Offset()]
	for !r.AtEnd() {
		if len(s.list) >= max {
			return scratch, bodyReason(part, "more than "+itoa(max)+" entries")
		}
		var a Attachment
		entry := r.Offset()
		var err error
		if r.PeekKind() == hessian2.String {
			a.Key, scratch, err = r.ReadString(scratch)
		} else {
			a.NonStringKey = true
			err = r.Skip()
		}
		if err != nil {
			return scratch, bodyErr(part, err)
		}
		switch a.Kind = r.PeekKind(); a.Kind {
		case hessian2.String:
			a.Value, scratch, err = r.ReadString(scratch)
		case hessian2.ClassDef:
			a.Kind = hessian2.Object
			fallthrough
		default:
			err = r.Skip()
		}
		if err != nil {
			return scratch, bodyErr(part, err)
		}
		a.Raw = body[entry:r.Offset():r.Offset()]
		if !a.NonStringKey && s.find(a.Key) >= 0 {
			return scratch, bodyReason(part, "key "+quote(a.Key)+" twice")
		}
		s.list = append(s.list, a)
	}
	if err := r.ReadEnd(); err != nil {
		return scratch, bodyErr(part, err)
	}
	return scratch, nil
}

// find returns the index of the entry with the string key k, or -1.
func (s *attachmentSet) find(k []byte) int {
	for i := range s.list {
		if !s.list[i].NonStringKey && bytes.Equal(s.list[i].Key, k) {
			return i
		}
	}
	return -1
}

// lookup returns the string value of key k.
func lookup(list []Attachment, k string) ([]byte, bool) {
	for i := range list {
		if a := &list[i]; a.IsString() && string(a.Key) == k {
			return a.Value, true
		}
	}
	return nil, false
}

// appendMap appends an attachments map holding atts: start ('H' if nil),
// then each entry (its Raw bytes when it has them), then 'Z'.
func appendMap(dst, start []byte, atts []Attachment) []byte {
	if start == nil {
		dst = hessian2.AppendMapStart(dst)
	} else {
		dst = append(dst, start...)
	}
	for i := range atts {
		a := &atts[i]
		if a.Raw != nil {
			dst = append(dst, a.Raw...)
			continue
		}
		dst = hessian2.AppendStringBytes(dst, a.Key)
		if a.Kind == hessian2.Null {
			dst = hessian2.AppendNull(dst)
		} else {
			dst = hessian2.AppendStringBytes(dst, a.Value)
		}
	}
	return hessian2.AppendEnd(dst)
}

func quote(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return "\"" + string(b) + "\""
}

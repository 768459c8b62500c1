package hessian2

import "encoding/binary"

// Defaults of Limits.
const (
	// DefaultMaxDepth bounds the nesting of lists, maps and objects.
	DefaultMaxDepth = 64
	// DefaultMaxClassDefs bounds the class definitions of one body.
	DefaultMaxClassDefs = 1024
)

// Limits bound what a Reader accepts. Zero fields take the defaults.
type Limits struct {
	// MaxDepth bounds the nesting of lists, maps and objects; default 64.
	MaxDepth int
	// MaxClassDefs bounds the class definitions remembered per body
	// (Reset starts afresh); default 1024.
	MaxClassDefs int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxClassDefs <= 0 {
		l.MaxClassDefs = DefaultMaxClassDefs
	}
	return l
}

// Reader is a cursor over one Hessian 2 encoded body. The zero value reads
// an empty input with the default limits; Reset gives it a body. It keeps
// no reference to anything but the body, and its class table is reused
// across Reset, so that a Reader kept per connection reads without
// allocating. Not safe for concurrent use.
type Reader struct {
	buf     []byte
	off     int
	limits  Limits
	classes []classDef
}

// classDef is a class definition seen in the body: its field count, and
// where it is (from 'C' to the end of its last field name).
type classDef struct {
	start, end int
	fields     int
}

// Reset makes r read b from its start, with an empty class table. r reads
// b in place: b must not change while r reads it, and the slices r returns
// point into it.
func (r *Reader) Reset(b []byte) {
	r.buf, r.off = b, 0
	r.classes = r.classes[:0]
	if r.limits.MaxDepth == 0 {
		r.limits = r.limits.withDefaults()
	}
}

// SetLimits sets the limits of the next reads; zero fields take the
// defaults.
func (r *Reader) SetLimits(l Limits) { r.limits = l.withDefaults() }

// Offset returns how many bytes of the input have been read.
func (r *Reader) Offset() int { return r.off }

// Len returns how many bytes of the input remain.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Bytes returns the input given to Reset.
func (r *Reader) Bytes() []byte { return r.buf }

// Classes returns the number of class definitions read so far.
func (r *Reader) Classes() int { return len(r.classes) }

// Class returns the i-th class definition read so far: its bytes, from
// 'C' to the end of its last field name, and its number of fields.
func (r *Reader) Class(i int) (def []byte, fields int) {
	c := r.classes[i]
	return r.buf[c.start:c.end:c.end], c.fields
}

// PeekKind returns the kind of the next value without reading it, or
// Invalid at the end of the input.
func (r *Reader) PeekKind() Kind {
	if r.off >= len(r.buf) {
		return Invalid
	}
	return tags[r.buf[r.off]].kind
}

// ReadNull reads a null if one is next, and reports whether it did.
func (r *Reader) ReadNull() bool {
	if r.off < len(r.buf) && r.buf[r.off] == tagNull {
		r.off++
		return true
	}
	return false
}

// ReadBool reads a boolean.
func (r *Reader) ReadBool() (bool, error) {
	if r.off >= len(r.buf) {
		return false, r.fail(r.off, "bool", ErrTruncated)
	}
	switch r.buf[r.off] {
	case tagTrue:
		r.off++
		return true, nil
	case tagFalse:
		r.off++
		return false, nil
	}
	return false, r.fail(r.off, "bool", ErrType)
}

// ReadInt reads a 32-bit int in any of its encodings.
func (r *Reader) ReadInt() (int32, error) {
	if r.off >= len(r.buf) {
		return 0, r.fail(r.off, "int", ErrTruncated)
	}
	if !isIntTag(r.buf[r.off]) {
		return 0, r.fail(r.off, "int", ErrType)
	}
	v, err := r.readNumber("int")
	return int32(v), err
}

// ReadLong reads a 64-bit long in any of its encodings, or a 32-bit int.
func (r *Reader) ReadLong() (int64, error) {
	if r.off >= len(r.buf) {
		return 0, r.fail(r.off, "long", ErrTruncated)
	}
	if k := tags[r.buf[r.off]].kind; k != Long && k != Int {
		return 0, r.fail(r.off, "long", ErrType)
	}
	return r.readNumber("long")
}

// readNumber reads an int or a long whose tag has been checked.
func (r *Reader) readNumber(what string) (int64, error) {
	b := r.buf[r.off:]
	tag := b[0]
	n := int(tags[tag].size)
	if len(b) < n {
		return 0, r.fail(len(r.buf), what, ErrTruncated)
	}
	r.off += n
	switch {
	case tag >= 0x80 && tag <= 0xbf:
		return int64(tag) - 0x90, nil
	case tag >= 0xc0 && tag <= 0xcf:
		return (int64(tag)-0xc8)<<8 | int64(b[1]), nil
	case tag >= 0xd0 && tag <= 0xd7:
		return (int64(tag)-0xd4)<<16 | int64(b[1])<<8 | int64(b[2]), nil
	case tag == tagInt, tag == tagLongInt:
		return int64(int32(binary.BigEndian.Uint32(b[1:]))), nil
	case tag >= 0xd8 && tag <= 0xef:
		return int64(tag) - 0xe0, nil
	case tag >= 0xf0:
		return (int64(tag)-0xf8)<<8 | int64(b[1]), nil
	case tag >= 0x38 && tag <= 0x3f:
		return (int64(tag)-0x3c)<<16 | int64(b[1])<<8 | int64(b[2]), nil
	default: // 'L'
		return int64(binary.BigEndian.Uint64(b[1:])), nil
	}
}

// readCount reads a length, a count or an index where the grammar wants an
// int: any int encoding, or null for 0 (as both the Java and the reference
// Go decoders take it). Negative values are refused; so are counts of
// elements that could not fit in the bytes left, each taking one at least.
func (r *Reader) readCount(what string) (int, error) {
	at := r.off
	if at >= len(r.buf) {
		return 0, r.fail(at, what, ErrTruncated)
	}
	if r.buf[at] == tagNull {
		r.off++
		return 0, nil
	}
	if !isIntTag(r.buf[at]) {
		return 0, r.fail(at, what, ErrSyntax)
	}
	v, err := r.readNumber(what)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, r.fail(at, what+" (negative)", ErrSyntax)
	}
	return int(v), nil
}

// ReadMapStart reads the start of a map, untyped ('H') or typed ('M' and a
// type, which it skips). Entries follow until AtEnd; ReadEnd reads the end.
func (r *Reader) ReadMapStart() error {
	if r.off >= len(r.buf) {
		return r.fail(r.off, "map", ErrTruncated)
	}
	switch r.buf[r.off] {
	case tagMapUntyped:
		r.off++
		return nil
	case tagMapTyped:
		r.off++
		return r.skipStringLike("map type")
	}
	return r.fail(r.off, "map", ErrType)
}

// AtEnd reports whether the next byte is the 'Z' that ends a map or a
// variable-length list. At the end of the input it reports false: the
// next read fails with ErrTruncated.
func (r *Reader) AtEnd() bool { return r.off < len(r.buf) && r.buf[r.off] == tagEnd }

// ReadEnd reads the 'Z' that ends a map or a variable-length list.
func (r *Reader) ReadEnd() error {
	if r.off >= len(r.buf) {
		return r.fail(r.off, "end of map or list", ErrTruncated)
	}
	if r.buf[r.off] != tagEnd {
		return r.fail(r.off, "end of map or list", ErrSyntax)
	}
	r.off++
	return nil
}

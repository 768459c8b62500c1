package hessian2

import "encoding/binary"

// Skip steps over the next value, whatever its kind, without building it.
// Class definitions it meets are remembered for the objects that follow
// in the same body. On error, the offset is unspecified.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	for {
		if r.off >= len(r.buf) {
			return r.fail(r.off, "value", ErrTruncated)
		}
		tag := r.buf[r.off]
		t := tags[tag]
		switch t.handle {
		case hFixed:
			if len(r.buf)-r.off < int(t.size) {
				return r.fail(len(r.buf), t.kind.String(), ErrTruncated)
			}
			r.off += int(t.size)
			return nil
		case hString:
			return r.skipString()
		case hBinary:
			return r.skipBinary()
		case hClassDef:
			// A definition is not a value: the value it precedes is.
			if err := r.readClassDef(); err != nil {
				return err
			}
			continue
		case hRef:
			r.off++
			_, err := r.readCount("reference")
			return err
		case hInvalid, hEnd:
			return r.fail(r.off, "value", ErrSyntax)
		}
		if depth >= r.limits.MaxDepth {
			return r.fail(r.off, t.kind.String(), ErrDepth)
		}
		return r.skipContainer(tag, t.handle, depth+1)
	}
}

// skipContainer skips a list, a map or an object whose elements are at
// depth.
func (r *Reader) skipContainer(tag byte, h uint8, depth int) error {
	at := r.off
	r.off++
	var n int
	var err error
	switch h {
	case hListVarTyped, hMapTyped:
		if err = r.skipStringLike("type"); err != nil {
			return err
		}
		return r.skipUntilEnd(depth, h == hMapTyped)
	case hListVar:
		return r.skipUntilEnd(depth, false)
	case hMapUntyped:
		return r.skipUntilEnd(depth, true)
	case hListFixTyped:
		if err = r.skipStringLike("list type"); err != nil {
			return err
		}
		n, err = r.readCount("list length")
	case hListFix:
		n, err = r.readCount("list length")
	case hListShortTyp:
		err = r.skipStringLike("list type")
		n = int(tag - 0x70)
	case hListShort:
		n = int(tag - 0x78)
	case hObject:
		var idx int
		if idx, err = r.readCount("class reference"); err == nil {
			n, err = r.classFields(at, idx)
		}
	case hObjectShort:
		n, err = r.classFields(at, int(tag-0x60))
	}
	if err != nil {
		return err
	}
	if n > len(r.buf)-r.off {
		return r.fail(len(r.buf), KindOf(tag).String()+" "+overLong, ErrTruncated)
	}
	for ; n > 0; n-- {
		if err := r.skip(depth); err != nil {
			return err
		}
	}
	return nil
}

// overLong ends the What of an error for a count of elements that cannot
// fit in the bytes left.
const overLong = "longer than the input"

// skipUntilEnd skips values, or key and value pairs, up to and including
// the 'Z' that ends them.
func (r *Reader) skipUntilEnd(depth int, pairs bool) error {
	for {
		if r.off >= len(r.buf) {
			return r.fail(r.off, "map or list", ErrTruncated)
		}
		if r.buf[r.off] == tagEnd {
			r.off++
			return nil
		}
		if err := r.skip(depth); err != nil {
			return err
		}
		if pairs {
			if err := r.skip(depth); err != nil {
				return err
			}
		}
	}
}

// classFields returns the field count of class idx, for the object at at.
func (r *Reader) classFields(at, idx int) (int, error) {
	if idx >= len(r.classes) {
		return 0, r.fail(at, "object of an undefined class", ErrSyntax)
	}
	return r.classes[idx].fields, nil
}

// readClassDef reads the class definition at r.off: 'C', the class name,
// the field count and the field names.
func (r *Reader) readClassDef() error {
	start := r.off
	if len(r.classes) >= r.limits.MaxClassDefs {
		return r.fail(start, "class definition", ErrLimit)
	}
	r.off++
	if err := r.skipStringLike("class name"); err != nil {
		return err
	}
	n, err := r.readCount("class field count")
	if err != nil {
		return err
	}
	if n > len(r.buf)-r.off {
		return r.fail(len(r.buf), "class definition "+overLong, ErrTruncated)
	}
	for i := 0; i < n; i++ {
		if err := r.skipStringLike("field name"); err != nil {
			return err
		}
	}
	r.classes = append(r.classes, classDef{start: start, end: r.off, fields: n})
	return nil
}

// skipBinary skips the binary value whose first chunk is at r.off.
func (r *Reader) skipBinary() error {
	for {
		b := r.buf[r.off:]
		var n, hdr int
		final := true
		switch tag := b[0]; {
		case tag >= 0x20 && tag <= 0x2f:
			n, hdr = int(tag-0x20), 1
		case tag >= 0x34 && tag <= 0x37:
			if len(b) < 2 {
				return r.fail(len(r.buf), "binary", ErrTruncated)
			}
			n, hdr = int(tag-0x34)<<8|int(b[1]), 2
		default: // 'A' or 'B'
			if len(b) < 3 {
				return r.fail(len(r.buf), "binary", ErrTruncated)
			}
			n, hdr, final = int(binary.BigEndian.Uint16(b[1:])), 3, tag == tagBinaryFinal
		}
		if len(b) < hdr+n {
			return r.fail(len(r.buf), "binary", ErrTruncated)
		}
		r.off += hdr + n
		if final {
			return nil
		}
		if r.off >= len(r.buf) {
			return r.fail(r.off, "binary", ErrTruncated)
		}
		if !isBinaryChunk(r.buf[r.off]) {
			return r.fail(r.off, "binary chunk", ErrSyntax)
		}
	}
}

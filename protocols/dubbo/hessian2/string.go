package hessian2

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// chunkHeader reads the header of the string chunk at r.off, whose tag has
// been checked: the number of UTF-16 units in the chunk, and whether it is
// the final one.
func (r *Reader) chunkHeader() (units int, final bool, err error) {
	b := r.buf[r.off:]
	switch tag := b[0]; {
	case tag <= 0x1f:
		r.off++
		return int(tag), true, nil
	case tag >= 0x30 && tag <= 0x33:
		if len(b) < 2 {
			return 0, false, r.fail(len(r.buf), "string", ErrTruncated)
		}
		r.off += 2
		return int(tag-0x30)<<8 | int(b[1]), true, nil
	default: // 'S' or 'R'
		if len(b) < 3 {
			return 0, false, r.fail(len(r.buf), "string", ErrTruncated)
		}
		r.off += 3
		return int(binary.BigEndian.Uint16(b[1:])), tag == tagStringFinal, nil
	}
}

// nextChunk checks that a string chunk follows a non-final one.
func (r *Reader) nextChunk() error {
	if r.off >= len(r.buf) {
		return r.fail(r.off, "string", ErrTruncated)
	}
	if !isStringChunk(r.buf[r.off]) {
		return r.fail(r.off, "string chunk", ErrSyntax)
	}
	return nil
}

// skipString skips the string whose first chunk is at r.off.
func (r *Reader) skipString() error {
	for {
		units, final, err := r.chunkHeader()
		if err != nil {
			return err
		}
		if _, err := r.skipChars(units, false); err != nil {
			return err
		}
		if final {
			return nil
		}
		if err := r.nextChunk(); err != nil {
			return err
		}
	}
}

const asciiMask = 0x8080808080808080

// skipChars steps over n characters (UTF-16 units) from r.off, each of one
// to three bytes as its lead byte says, as Java's Hessian2Input reads
// them. With check, it also reports whether the bytes are the canonical
// UTF-8 of what Java reads: no overlong forms, no stray continuation bits,
// no surrogates; only then can they be handed out as they are.
func (r *Reader) skipChars(n int, check bool) (canonical bool, err error) {
	b, i := r.buf, r.off
	canonical = true
	for n > 0 {
		if n >= 8 && len(b)-i >= 8 && binary.LittleEndian.Uint64(b[i:])&asciiMask == 0 {
			i += 8
			n -= 8
			continue
		}
		if i >= len(b) {
			return false, r.fail(len(b), "string", ErrTruncated)
		}
		c := b[i]
		switch {
		case c < 0x80:
			i++
		case c&0xe0 == 0xc0:
			if len(b)-i < 2 {
				return false, r.fail(len(b), "string", ErrTruncated)
			}
			if check && (c < 0xc2 || b[i+1]&0xc0 != 0x80) {
				canonical = false
			}
			i += 2
		case c&0xf0 == 0xe0:
			if len(b)-i < 3 {
				return false, r.fail(len(b), "string", ErrTruncated)
			}
			if check && canonical {
				c1, c2 := b[i+1], b[i+2]
				v := rune(c&0x0f)<<12 | rune(c1&0x3f)<<6 | rune(c2&0x3f)
				if c1&0xc0 != 0x80 || c2&0xc0 != 0x80 || v < 0x800 || v >= 0xd800 && v <= 0xdfff {
					canonical = false
				}
			}
			i += 3
		default:
			return false, r.fail(i, "string character", ErrSyntax)
		}
		n--
	}
	r.off = i
	return canonical, nil
}

// ReadString reads a string. When it is one chunk whose bytes are the
// canonical UTF-8 of its characters (the usual case), the result is a
// slice of the input. Otherwise (a chunked string, surrogate pairs, forms
// Java reads but UTF-8 does not allow) the characters are decoded as Java
// decodes them and appended to dst as UTF-8, a lone surrogate becoming
// U+FFFD; the result is then a slice of the returned dst, which the caller
// keeps for the next call (dst never holds more than the string's encoded
// size). A null is ErrType: use ReadNull first where one is allowed.
func (r *Reader) ReadString(dst []byte) (s, newDst []byte, err error) {
	if r.off >= len(r.buf) {
		return nil, dst, r.fail(r.off, "string", ErrTruncated)
	}
	if !isStringChunk(r.buf[r.off]) {
		return nil, dst, r.fail(r.off, "string", ErrType)
	}
	start := r.off
	units, final, err := r.chunkHeader()
	if err != nil {
		return nil, dst, err
	}
	dataStart := r.off
	canonical, err := r.skipChars(units, true)
	if err != nil {
		return nil, dst, err
	}
	if final && canonical {
		return r.buf[dataStart:r.off:r.off], dst, nil
	}
	for !final {
		if err := r.nextChunk(); err != nil {
			return nil, dst, err
		}
		if units, final, err = r.chunkHeader(); err != nil {
			return nil, dst, err
		}
		if _, err := r.skipChars(units, false); err != nil {
			return nil, dst, err
		}
	}
	end := r.off
	dst = slices.Grow(dst, end-start)
	begin := len(dst)
	dst = decodeChunks(dst, r.buf[start:end])
	return dst[begin:len(dst):len(dst)], dst, nil
}

// decodeChunks appends the UTF-8 of the string chunks in b, which have
// been checked, combining surrogate pairs (also across chunks).
func decodeChunks(dst, b []byte) []byte {
	high := rune(-1) // a high surrogate waiting for its low half
	for len(b) > 0 {
		var n int
		switch tag := b[0]; {
		case tag <= 0x1f:
			n, b = int(tag), b[1:]
		case tag >= 0x30 && tag <= 0x33:
			n, b = int(tag-0x30)<<8|int(b[1]), b[2:]
		default:
			n, b = int(binary.BigEndian.Uint16(b[1:])), b[3:]
		}
		for ; n > 0; n-- {
			var v rune
			switch c := b[0]; {
			case c < 0x80:
				v, b = rune(c), b[1:]
			case c&0xe0 == 0xc0:
				v, b = rune(c&0x1f)<<6|rune(b[1]&0x3f), b[2:]
			default:
				v, b = rune(c&0x0f)<<12|rune(b[1]&0x3f)<<6|rune(b[2]&0x3f), b[3:]
			}
			switch {
			case v >= 0xd800 && v <= 0xdbff:
				if high >= 0 {
					dst = utf8.AppendRune(dst, utf8.RuneError)
				}
				high = v
				continue
			case v >= 0xdc00 && v <= 0xdfff:
				if high >= 0 {
					dst = utf8.AppendRune(dst, (high-0xd800)<<10+(v-0xdc00)+0x10000)
					high = -1
				} else {
					dst = utf8.AppendRune(dst, utf8.RuneError)
				}
				continue
			}
			if high >= 0 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				high = -1
			}
			dst = utf8.AppendRune(dst, v)
		}
	}
	if high >= 0 {
		dst = utf8.AppendRune(dst, utf8.RuneError)
	}
	return dst
}

// skipStringLike skips what Java reads with readString or readType where a
// class name, a field name or a list or map type is expected: a string,
// or a null, boolean or number (a type reference is an int).
func (r *Reader) skipStringLike(what string) error {
	if r.off >= len(r.buf) {
		return r.fail(r.off, what, ErrTruncated)
	}
	t := tags[r.buf[r.off]]
	switch {
	case t.handle == hString:
		return r.skipString()
	case t.handle == hFixed && t.kind != Date:
		if len(r.buf)-r.off < int(t.size) {
			return r.fail(len(r.buf), what, ErrTruncated)
		}
		r.off += int(t.size)
		return nil
	}
	return r.fail(r.off, what, ErrSyntax)
}

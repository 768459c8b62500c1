package hessian2

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// AppendNull appends a null.
func AppendNull(dst []byte) []byte { return append(dst, tagNull) }

// AppendBool appends a boolean.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, tagTrue)
	}
	return append(dst, tagFalse)
}

// AppendInt appends a 32-bit int in its shortest encoding.
func AppendInt(dst []byte, v int32) []byte {
	switch {
	case v >= -0x10 && v <= 0x2f:
		return append(dst, byte(v+0x90))
	case v >= -0x800 && v <= 0x7ff:
		return append(dst, byte(0xc8+v>>8), byte(v))
	case v >= -0x40000 && v <= 0x3ffff:
		return append(dst, byte(0xd4+v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint32(append(dst, tagInt), uint32(v))
}

// AppendLong appends a 64-bit long in its shortest encoding.
func AppendLong(dst []byte, v int64) []byte {
	switch {
	case v >= -0x08 && v <= 0x0f:
		return append(dst, byte(v+0xe0))
	case v >= -0x800 && v <= 0x7ff:
		return append(dst, byte(0xf8+v>>8), byte(v))
	case v >= -0x40000 && v <= 0x3ffff:
		return append(dst, byte(0x3c+v>>16), byte(v>>8), byte(v))
	case v >= -0x80000000 && v <= 0x7fffffff:
		return binary.BigEndian.AppendUint32(append(dst, tagLongInt), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, tagLong), uint64(v))
}

// AppendMapStart appends the start of an untyped map ('H'); entries and
// AppendEnd follow.
func AppendMapStart(dst []byte) []byte { return append(dst, tagMapUntyped) }

// AppendEnd appends the 'Z' that ends a map or a variable-length list.
func AppendEnd(dst []byte) []byte { return append(dst, tagEnd) }

// AppendString appends s, UTF-8, as Java's Hessian2Output writes a string:
// lengths in UTF-16 units, characters beyond the BMP as two three-byte
// surrogates, chunks of at most 32768 units that never split a pair.
// Invalid UTF-8 is written as U+FFFD.
func AppendString(dst []byte, s string) []byte {
	return AppendStringBytes(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// AppendStringBytes is AppendString for a string held as bytes.
func AppendStringBytes(dst, s []byte) []byte {
	units, ascii := utf16Len(s)
	if ascii {
		for units > chunkMax {
			dst = append(dst, tagStringChunk, byte(chunkMax>>8), byte(chunkMax&0xff))
			dst = append(dst, s[:chunkMax]...)
			s, units = s[chunkMax:], units-chunkMax
		}
		return append(appendFinalHeader(dst, units), s...)
	}
	for units > chunkMax {
		// Take runes up to chunkMax units, a pair never split.
		n, i := 0, 0
		for n < chunkMax {
			r, size := utf8.DecodeRune(s[i:])
			u := 1
			if r >= 0x10000 {
				u = 2
			}
			if n+u > chunkMax {
				break
			}
			n += u
			i += size
		}
		dst = append(dst, tagStringChunk, byte(n>>8), byte(n))
		dst = appendUnits(dst, s[:i])
		s, units = s[i:], units-n
	}
	return appendUnits(appendFinalHeader(dst, units), s)
}

// appendFinalHeader appends the header of a final chunk of n units.
func appendFinalHeader(dst []byte, n int) []byte {
	switch {
	case n <= 0x1f:
		return append(dst, byte(n))
	case n <= stringShortMax:
		return append(dst, byte(0x30+n>>8), byte(n))
	}
	return append(dst, tagStringFinal, byte(n>>8), byte(n))
}

// utf16Len returns the number of UTF-16 units of the UTF-8 in s, and
// whether s is ASCII.
func utf16Len(s []byte) (units int, ascii bool) {
	i := 0
	for len(s)-i >= 8 && binary.LittleEndian.Uint64(s[i:])&asciiMask == 0 {
		i += 8
	}
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return len(s), true
	}
	units = i
	for i < len(s) {
		r, size := utf8.DecodeRune(s[i:])
		units++
		if r >= 0x10000 {
			units++
		}
		i += size
	}
	return units, false
}

// appendUnits appends the characters of the UTF-8 in s, each UTF-16 unit
// in one to three bytes.
func appendUnits(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		i += size
		if r < 0x10000 {
			dst = utf8.AppendRune(dst, r) // U+FFFD for invalid input
			continue
		}
		r -= 0x10000
		dst = appendUnit(dst, 0xd800+r>>10)
		dst = appendUnit(dst, 0xdc00+r&0x3ff)
	}
	return dst
}

// appendUnit appends a surrogate in the three-byte form.
func appendUnit(dst []byte, u rune) []byte {
	return append(dst, byte(0xe0|u>>12), byte(0x80|u>>6&0x3f), byte(0x80|u&0x3f))
}

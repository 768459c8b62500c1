package http1

import "encoding/binary"

// Octet classes of RFC 9110 and RFC 3986, as a table so that validating a
// head costs one load per byte.
const (
	classTchar  = 1 << iota // token character (method, field name, coding)
	classTarget             // allowed in a request-target: VCHAR but '#'
	classHost               // allowed in a Host value or authority
	classHex                // hexadecimal digit
)

var (
	class [256]uint8
	// nameByte maps a tchar to its lower-case form and anything else to 0.
	nameByte [256]byte
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alpha := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
		digit := '0' <= b && b <= '9'
		var k uint8
		if alpha || digit || (b < 0x80 && isAny(b, "!#$%&'*+-.^_`|~")) {
			k |= classTchar
			nameByte[c] = b
			if 'A' <= b && b <= 'Z' {
				nameByte[c] = b + 'a' - 'A'
			}
		}
		if 0x21 <= b && b <= 0x7e && b != '#' {
			k |= classTarget
		}
		if alpha || digit || isAny(b, "-._~%!$&'()*+,;=:[]") {
			k |= classHost
		}
		if digit || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			k |= classHex
		}
		class[c] = k
	}
}

func isAny(b byte, set string) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == b {
			return true
		}
	}
	return false
}

// lowerName lower-cases a field name in place and reports whether it is a
// non-empty token.
func lowerName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for i, c := range name {
		l := nameByte[c]
		if l == 0 {
			return false
		}
		name[i] = l
	}
	return true
}

// isToken reports whether s is a non-empty token.
func isToken[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if class[s[i]]&classTchar == 0 {
			return false
		}
	}
	return true
}

// isLowerToken reports whether s is a non-empty token without upper-case
// letters, as field names in the model are.
func isLowerToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if nameByte[c] != c {
			return false
		}
	}
	return true
}

// validValue reports whether v holds only field-value octets: VCHAR,
// obs-text, SP and HTAB (RFC 9110 section 5.5), so no CR, LF, NUL or other
// control. Eight bytes are checked at a time for any octet below 0x20 or
// equal to 0x7f; only a block with such an octet (usually a tab) is
// looked at byte by byte.
func validValue(v []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		below := (x - 0x20*ones) &^ x & highs
		y := x ^ 0x7f*ones
		del := (y - ones) &^ y & highs
		if below|del != 0 && !validValueSlow(v[i:i+8]) {
			return false
		}
	}
	return validValueSlow(v[i:])
}

func validValueSlow(v []byte) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validTarget reports whether a request-target holds only the octets RFC
// 3986 lets a URI reference carry on the wire (no controls, space,
// non-ASCII or fragment).
func validTarget(t []byte) bool {
	for _, c := range t {
		if class[c]&classTarget == 0 {
			return false
		}
	}
	return true
}

// validHost reports whether an authority (Host value or the authority of
// an absolute-form target) holds only host and port octets: no userinfo,
// path or whitespace. It may be empty.
func validHost(h []byte) bool {
	for _, c := range h {
		if class[c]&classHost == 0 {
			return false
		}
	}
	return true
}

// trimOWS trims optional whitespace (SP and HTAB) from both ends.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a and b are equal ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nextElement splits the first element off a comma-separated list (RFC
// 9110 section 5.6.1), trimming whitespace; empty elements are returned as
// empty and are the caller's to skip.
func nextElement(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// parseDecimal parses 1*DIGIT into a non-negative int64; false on an empty
// string, any other octet (sign, space) or overflow.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const maxInt = 1<<63 - 1
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (maxInt-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// appendDecimal appends n (non-negative) in decimal.
func appendDecimal(dst []byte, n int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

// putHex writes n in lower-case hex at the start of dst and returns the
// digit count.
func putHex(dst []byte, n int) int {
	const digits = "0123456789abcdef"
	w := 1
	for m := n >> 4; m != 0; m >>= 4 {
		w++
	}
	for i := w - 1; i >= 0; i-- {
		dst[i] = digits[n&0xf]
		n >>= 4
	}
	return w
}

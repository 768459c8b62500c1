package route

// ASCII-only case folding, as Envoy's absl::EqualsIgnoreCase and friends:
// header values and paths are compared byte-wise, never Unicode-folded.

// lowerASCII returns the lower-case of an ASCII letter, c otherwise.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// text is what the matchers compare: header values and paths are []byte,
// the request method and configured values are strings.
type text interface{ ~string | ~[]byte }

// equalFold reports whether a and b are equal under ASCII case folding.
func equalFold[A, B text](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// hasPrefix reports whether v starts with p, folding case if fold.
func hasPrefix[V, P text](v V, p P, fold bool) bool {
	if len(v) < len(p) {
		return false
	}
	if fold {
		return equalFold(v[:len(p)], p)
	}
	return string(v[:len(p)]) == string(p)
}

// hasSuffix reports whether v ends with s, folding case if fold.
func hasSuffix[V, S text](v V, s S, fold bool) bool {
	if len(v) < len(s) {
		return false
	}
	if fold {
		return equalFold(v[len(v)-len(s):], s)
	}
	return string(v[len(v)-len(s):]) == string(s)
}

// contains reports whether s occurs in v, folding case if fold.
func contains[V, S text](v V, s S, fold bool) bool {
	for i := 0; i+len(s) <= len(v); i++ {
		if hasPrefix(v[i:], s, fold) {
			return true
		}
	}
	return false
}

// equal reports whether v equals s, folding case if fold.
func equal[V, S text](v V, s S, fold bool) bool {
	if fold {
		return equalFold(v, s)
	}
	return string(v) == string(s)
}

// toLower returns s lower-cased (ASCII).
func toLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return s
}

// appendLower appends s lower-cased (ASCII) to dst.
func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		dst = append(dst, lowerASCII(c))
	}
	return dst
}

// hasUpper reports whether s has an upper-case ASCII letter.
func hasUpper(s []byte) bool {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// trimSpace trims ASCII whitespace (space, \t, \n, \v, \f, \r) from both
// ends, as absl::StripAsciiWhitespace.
func trimSpace[T text](s T) T {
	isSpace := func(c byte) bool { return c == ' ' || ('\t' <= c && c <= '\r') }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// parseInt64 parses a decimal integer as absl::SimpleAtoi: surrounding ASCII
// whitespace and one leading sign allowed, nothing else; false on overflow.
func parseInt64(b []byte) (int64, bool) {
	b = trimSpace(b)
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself: MinInt64
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

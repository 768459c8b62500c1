package dubbo

// ParamCount returns how many arguments a parameter-types descriptor
// announces, counted as Dubbo counts them: the matches, left to right, of
// its descriptor pattern (ReflectUtils.DESC_REGEX in Java, DescRegex in
// dubbo-go-hessian2)
//
//	[VZBCDFIJS] | L ident(/ident)* ; | \[+ ([VZBCDFIJS] | L ident(/ident)* ;)
//
// with ident = [_$a-zA-Z][_$a-zA-Z0-9]*, bytes between matches skipped.
// It is written out rather than run as a regular expression to count
// without allocating; its every branch is decided by one byte, so the
// first match at each position is the only one.
func ParamCount(desc []byte) int {
	n := 0
	for i := 0; i < len(desc); {
		if m := descMatch(desc, i); m > 0 {
			n++
			i += m
		} else {
			i++
		}
	}
	return n
}

// descMatch returns the length of the descriptor match at d[i], 0 if none.
func descMatch(d []byte, i int) int {
	switch c := d[i]; {
	case isPrimitiveDesc(c):
		return 1
	case c == 'L':
		return classDescMatch(d, i)
	case c == '[':
		j := i
		for j < len(d) && d[j] == '[' {
			j++
		}
		if j == len(d) {
			return 0
		}
		if isPrimitiveDesc(d[j]) {
			return j + 1 - i
		}
		if d[j] != 'L' {
			return 0
		}
		if m := classDescMatch(d, j); m > 0 {
			return j - i + m
		}
	}
	return 0
}

// classDescMatch returns the length of "L ident(/ident)* ;" at d[i] ('L').
func classDescMatch(d []byte, i int) int {
	j := i + 1
	for {
		if j >= len(d) || !isIdentStart(d[j]) {
			return 0
		}
		j++
		for j < len(d) && isIdentPart(d[j]) {
			j++
		}
		if j >= len(d) {
			return 0
		}
		switch d[j] {
		case ';':
			return j + 1 - i
		case '/':
			j++
		default:
			return 0
		}
	}
}

func isPrimitiveDesc(c byte) bool {
	switch c {
	case 'V', 'Z', 'B', 'C', 'D', 'F', 'I', 'J', 'S':
		return true
	}
	return false
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c|0x20 >= 'a' && c|0x20 <= 'z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

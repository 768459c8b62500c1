// Package cmdop scans Envoy's command operators, "%COMMAND(args):N%", the
// syntax that access log formats and header values share. What each
// command means is its user's: the access log formatter and the route
// header formatter each keep their own table.
package cmdop

import (
	"fmt"
	"strconv"
	"strings"
)

// Operator is one scanned command operator.
type Operator struct {
	Command string // COMMAND: upper-case letters, digits, '_'
	Args    string // what stands between the parentheses
	HasArgs bool   // parentheses were written, even empty ones
	MaxLen  int    // N of ":N", 0 when absent
	Len     int    // bytes of s the operator takes, both '%' included
}

// Scan scans the operator at the start of s, which begins with '%'.
func Scan(s string) (Operator, error) {
	i := 1
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	op := Operator{Command: s[1:i]}
	if op.Command == "" {
		return op, fmt.Errorf("'%%' not followed by a command (write %%%% for a literal '%%')")
	}
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return op, fmt.Errorf("unterminated arguments of %%%s", op.Command)
		}
		op.Args, op.HasArgs = s[i+1:i+end], true
		i += end + 1
	}
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil || n <= 0 {
			return op, fmt.Errorf("invalid length in %%%s: %q", op.Command, s[i+1:j])
		}
		op.MaxLen, i = n, j
	}
	if i >= len(s) || s[i] != '%' {
		return op, fmt.Errorf("unterminated %%%s", op.Command)
	}
	op.Len = i + 1
	return op, nil
}

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

// Split splits a format into its parts, in order: each run of literal text
// (where "%%" stands for '%') becomes lit(text), each operator op(o). An
// error names the format and the operator's position.
func Split[P any](s string, lit func(string) P, op func(Operator) (P, error)) ([]P, error) {
	var parts []P
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, lit(text.String()))
			text.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			text.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			text.WriteByte('%')
			i++
			continue
		}
		o, err := Scan(s[i:])
		if err == nil {
			var p P
			if p, err = op(o); err == nil {
				flush()
				parts = append(parts, p)
				i += o.Len - 1
				continue
			}
		}
		return nil, fmt.Errorf("format %q at position %d: %w", s, i, err)
	}
	flush()
	return parts, nil
}

package route

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// MaxRegexProgramSize is the largest regular expression accepted, counted
// in instructions of Go's compiled program, which is of the same order as
// RE2's program size for a pattern (counted repetitions are expanded in
// both). Envoy refuses RE2 programs over 100 by default
// (re2.max_program_size.error_level); the limit here is looser because
// Go's engine runs in linear time whatever the size, so it only bounds
// memory.
const MaxRegexProgramSize = 1000

// fullRegex is an RE2 pattern compiled for full matches (Envoy's
// RegexMatcher semantics: the whole input must match), with the literal
// text every match starts with, checked first: running a regexp costs far
// more than comparing a prefix, and most route regexes start with one.
type fullRegex struct {
	re     *regexp.Regexp
	prefix string
	// infix, when set, is the literal of a pattern ".*LITERAL.*" (istiod
	// writes ".*/ns/NAME/.*" for namespaces): a match is an input that
	// contains it and no newline, which "." does not match.
	infix string
}

func compileRegex(pattern string) (*fullRegex, error) {
	if err := checkProgramSize(pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", pattern, err)
	}
	return &fullRegex{re: re, prefix: literalPrefix(pattern), infix: literalInfix(pattern)}, nil
}

// match reports whether all of b matches.
func (r *fullRegex) match(b []byte) bool {
	if r.infix != "" {
		return contains(b, r.infix, false) && !contains(b, "\n", false)
	}
	return hasPrefix(b, r.prefix, false) && r.re.Match(b)
}

// matchString reports whether all of s matches.
func (r *fullRegex) matchString(s string) bool {
	if r.infix != "" {
		return contains(s, r.infix, false) && !contains(s, "\n", false)
	}
	return hasPrefix(s, r.prefix, false) && r.re.MatchString(s)
}

// literalInfix returns LITERAL when pattern is ".*LITERAL.*" (case
// sensitive, "." not matching newlines), else "".
func literalInfix(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	anyStar := func(r *syntax.Regexp) bool {
		return r.Op == syntax.OpStar && len(r.Sub) == 1 && r.Sub[0].Op == syntax.OpAnyCharNotNL
	}
	if re.Op != syntax.OpConcat || len(re.Sub) != 3 || !anyStar(re.Sub[0]) || !anyStar(re.Sub[2]) ||
		re.Sub[1].Op != syntax.OpLiteral || re.Sub[1].Flags&syntax.FoldCase != 0 {
		return ""
	}
	return string(re.Sub[1].Rune)
}

// literalPrefix returns the case-sensitive literal a pattern's matches
// start with ("" if none): the leading literal of its top-level
// concatenation, after an optional ^.
func literalPrefix(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	for len(subs) > 0 && subs[0].Op == syntax.OpBeginText {
		subs = subs[1:]
	}
	if len(subs) == 0 || subs[0].Op != syntax.OpLiteral || subs[0].Flags&syntax.FoldCase != 0 {
		return ""
	}
	return string(subs[0].Rune)
}

// compileSearchRegex compiles an RE2 pattern that matches anywhere in its
// input (regex_rewrite's pattern, replaced wherever it matches).
func compileSearchRegex(pattern string) (*regexp.Regexp, error) {
	if err := checkProgramSize(pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", pattern, err)
	}
	return re, nil
}

func checkProgramSize(pattern string) error {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return fmt.Errorf("invalid regex %q: %w", pattern, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return fmt.Errorf("invalid regex %q: %w", pattern, err)
	}
	if n := len(prog.Inst); n > MaxRegexProgramSize {
		return fmt.Errorf("regex %q is too complex: program size %d exceeds %d", pattern, n, MaxRegexProgramSize)
	}
	return nil
}

// regexMatcher compiles an envoy.type.matcher.v3.RegexMatcher for full
// matches. google_re2 (deprecated, no fields in v3) is accepted and changes
// nothing.
func regexMatcher(pb *matcherv3.RegexMatcher) (*fullRegex, error) {
	return compileRegex(pb.GetRegex())
}

// rewriteTemplate turns an RE2 rewrite string (\0-\9 name capture groups,
// \\ is a backslash) into a template for regexp.Expand and ReplaceAll
// ($$ is a dollar, ${n} a group), refusing what RE2::Rewrite would refuse.
func rewriteTemplate(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c != '\\':
			b.WriteByte(c)
		case i+1 == len(sub):
			return "", fmt.Errorf("substitution %q ends with a lone backslash", sub)
		case sub[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case '0' <= sub[i+1] && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > groups {
				return "", fmt.Errorf("substitution %q refers to group \\%d but the pattern has %d", sub, n, groups)
			}
			fmt.Fprintf(&b, "${%d}", n)
			i++
		default:
			return "", fmt.Errorf("substitution %q has an invalid escape \\%c (only \\0-\\9 and \\\\)", sub, sub[i+1])
		}
	}
	return b.String(), nil
}

// regexRewrite is a compiled RegexMatchAndSubstitute.
type regexRewrite struct {
	re       *regexp.Regexp
	template []byte
}

func compileRegexRewrite(pb *matcherv3.RegexMatchAndSubstitute) (*regexRewrite, error) {
	re, err := compileSearchRegex(pb.GetPattern().GetRegex())
	if err != nil {
		return nil, err
	}
	t, err := rewriteTemplate(pb.GetSubstitution(), re.NumSubexp())
	if err != nil {
		return nil, err
	}
	return &regexRewrite{re: re, template: []byte(t)}, nil
}

// replaceAll replaces every match in src (RE2::GlobalReplace).
func (r *regexRewrite) replaceAll(src []byte) []byte {
	return r.re.ReplaceAll(src, r.template)
}

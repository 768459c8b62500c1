package route

import "testing"

// The ".*LITERAL.*" shortcut gives the regexp's own answers.
func TestRegexInfixShortcut(t *testing.T) {
	for _, c := range []struct {
		pattern, infix string
	}{
		{".*/ns/monitoring/.*", "/ns/monitoring/"},
		{".*a.*", "a"},
		{"(?i).*a.*", ""},
		{".*a", ""},
		{"a.*b.*", ""},
		{"(?s).*a.*", ""},
	} {
		r, err := compileRegex(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if r.infix != c.infix {
			t.Errorf("%q: infix %q, want %q", c.pattern, r.infix, c.infix)
		}
		for _, in := range []string{"", "a", "xay", "spiffe://cluster.local/ns/monitoring/sa/p", "spiffe://cluster.local/ns/monitoringx/sa/p", "x\na", "/ns/monitoring/\n", "A"} {
			if got, want := r.matchString(in), r.re.MatchString(in); got != want {
				t.Errorf("%q on %q: %v, the regexp says %v", c.pattern, in, got, want)
			}
			if got, want := r.match([]byte(in)), r.re.MatchString(in); got != want {
				t.Errorf("%q on %q (bytes): %v, the regexp says %v", c.pattern, in, got, want)
			}
		}
	}
}

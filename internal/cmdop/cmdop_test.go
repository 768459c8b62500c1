package cmdop

import "testing"

func TestScan(t *testing.T) {
	tests := []struct {
		in      string
		want    Operator
		wantErr string
	}{
		{in: "%START_TIME%", want: Operator{Command: "START_TIME", Len: 12}},
		{in: "%REQ(:path)%rest", want: Operator{Command: "REQ", Args: ":path", HasArgs: true, Len: 12}},
		{in: "%REQ(x-a?x-b):10% tail", want: Operator{Command: "REQ", Args: "x-a?x-b", HasArgs: true, MaxLen: 10, Len: 17}},
		{in: "%PROTOCOL()%", want: Operator{Command: "PROTOCOL", HasArgs: true, Len: 12}},
		{in: "%", wantErr: "'%' not followed by a command (write %% for a literal '%')"},
		{in: "%lower%", wantErr: "'%' not followed by a command (write %% for a literal '%')"},
		{in: "%REQ(x", wantErr: "unterminated arguments of %REQ"},
		{in: "%REQ(x):0%", wantErr: `invalid length in %REQ: "0"`},
		{in: "%REQ(x):%", wantErr: `invalid length in %REQ: ""`},
		{in: "%DURATION", wantErr: "unterminated %DURATION"},
		{in: "%DURATION x%", wantErr: "unterminated %DURATION"},
	}
	for _, tt := range tests {
		got, err := Scan(tt.in)
		switch {
		case tt.wantErr != "":
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Scan(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("Scan(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("Scan(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	type part struct{ lit, cmd string }
	lit := func(s string) part { return part{lit: s} }
	op := func(o Operator) (part, error) {
		if o.Command == "BAD" {
			return part{}, errBad
		}
		return part{cmd: o.Command + "(" + o.Args + ")"}, nil
	}
	got, err := Split("a %% b %REQ(x)%%%c%DURATION%", lit, op)
	want := []part{{lit: "a % b "}, {cmd: "REQ(x)"}, {lit: "%c"}, {cmd: "DURATION()"}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("Split = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Split = %v, want %v", got, want)
		}
	}
	for in, wantErr := range map[string]string{
		"x %BAD%":  `format "x %BAD%" at position 2: bad operator`,
		"x %REQ(y": `format "x %REQ(y" at position 2: unterminated arguments of %REQ`,
	} {
		if _, err := Split(in, lit, op); err == nil || err.Error() != wantErr {
			t.Errorf("Split(%q) error = %v, want %q", in, err, wantErr)
		}
	}
}

var errBad = errorString("bad operator")

type errorString string

func (e errorString) Error() string { return string(e) }

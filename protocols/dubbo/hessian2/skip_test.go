package hessian2

import (
	"errors"
	"testing"
)

// classCar defines class 0: "Car" with fields color and model.
var classCar = cat('C', 0x03, "Car", 0x92, 0x05, "color", 0x05, "model")

func TestSkipLengths(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"null", cat('N')},
		{"true", cat('T')},
		{"false", cat('F')},
		{"int direct", cat(0x90)},
		{"int byte", cat(0xc8, 0x30)},
		{"int short", cat(0xd4, 0x12, 0x34)},
		{"int full", cat('I', 0, 0, 1, 0)},
		{"long direct", cat(0xe0)},
		{"long byte", cat(0xf8, 0x01)},
		{"long short", cat(0x3c, 0x01, 0x02)},
		{"long int", cat(0x59, 1, 2, 3, 4)},
		{"long full", cat('L', 1, 2, 3, 4, 5, 6, 7, 8)},
		{"double zero", cat(0x5b)},
		{"double one", cat(0x5c)},
		{"double byte", cat(0x5d, 0x80)},
		{"double short", cat(0x5e, 0x01, 0x00)},
		{"double mill", cat(0x5f, 0, 0, 0, 1)},
		{"double full", cat('D', 0x40, 0x28, 0x80, 0, 0, 0, 0, 0)},
		{"date ms", cat(0x4a, 0, 0, 0, 0xd0, 0x4b, 0x92, 0x84, 0xb8)},
		{"date minute", cat(0x4b, 0x00, 0xe3, 0x83, 0x8f)},
		{"empty string", cat(0x00)},
		{"short string", cat(0x05, "hello")},
		{"medium string", cat(0x31, 0x00, rep("a", 256))},
		{"long string", cat('S', 0x04, 0x00, rep("b", 1024))},
		{"chunked string", cat('R', 0x00, 0x02, "ab", 'R', 0x00, 0x01, "c", 0x02, "de")},
		{"two-byte chars", cat(0x02, "\xc3\xa9\xc3\xa8")},
		{"surrogate pair is two units", cat(0x02, "\xed\xa0\xbd\xed\xb8\x80")},
		{"binary direct", cat(0x23, 1, 2, 3)},
		{"binary short", cat(0x34, 0x10, rep("x", 16))},
		{"binary chunks", cat('A', 0x00, 0x02, "ab", 0x21, "c")},
		{"binary final", cat('B', 0x00, 0x03, "abc")},
		{"untyped fixed list", cat(0x7a, 0x90, 0x91)},
		{"untyped list", cat(0x58, 0x92, 0x90, 0x91)},
		{"untyped variable list", cat(0x57, 0x90, 'N', 'Z')},
		{"typed fixed list", cat(0x72, 0x04, "[int", 0x90, 0x91)},
		{"typed list", cat('V', 0x04, "[int", 0x92, 0x90, 0x91)},
		{"typed variable list", cat(0x55, 0x04, "[int", 0x90, 'Z')},
		{"typed list by type reference", cat(0x71, 0x90, 0x90)},
		{"untyped map", cat('H', 0x01, "a", 0x90, 0x01, "b", 'N', 'Z')},
		{"typed map", cat('M', 0x03, "Foo", 0x91, 0x92, 'Z')},
		{"empty map", cat('H', 'Z')},
		{"object after its definition", cat(classCar, 0x60, 0x03, "red", 0x08, "corvette")},
		{"object by long index", cat(classCar, 'O', 0x90, 0x03, "red", 0x01, "c")},
		{"ref", cat(0x51, 0x90)},
		{"ref by null", cat(0x51, 'N')},
		{"nested", cat('H', 0x01, "k", 0x79, 'H', 'Z', 'Z')},
		{"class used inside a list", cat(0x79, classCar, 0x60, 'N', 'N')},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Reader
			r.Reset(append(c.in, 0x90)) // a value after: Skip must stop before it
			if err := r.Skip(); err != nil {
				t.Fatalf("Skip: %v", err)
			}
			if r.Offset() != len(c.in) {
				t.Fatalf("Skip consumed %d bytes, want %d", r.Offset(), len(c.in))
			}
			if v, err := r.ReadInt(); err != nil || v != 0 {
				t.Fatalf("the value after: %d, %v", v, err)
			}
		})
	}
}

func TestSkipClassTableSpansValues(t *testing.T) {
	var r Reader
	r.Reset(cat(classCar, 0x60, 'N', 'N', 0x60, 0x01, "a", 0x01, "b"))
	for i := range 2 {
		if err := r.Skip(); err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
	}
	if r.Len() != 0 || r.Classes() != 1 {
		t.Fatalf("left %d bytes, %d classes", r.Len(), r.Classes())
	}
	def, fields := r.Class(0)
	if string(def) != string(classCar) || fields != 2 {
		t.Fatalf("Class(0) = %q, %d", def, fields)
	}
	r.Reset(cat(0x60, 'N', 'N'))
	if err := r.Skip(); !errors.Is(err, ErrSyntax) {
		t.Fatalf("after Reset, class 0 is still defined: %v", err)
	}
}

func TestSkipErrors(t *testing.T) {
	cases := []struct {
		name   string
		in     []byte
		limits Limits
		want   error
		offset int
	}{
		{"empty", nil, Limits{}, ErrTruncated, 0},
		{"truncated int", cat('I', 0, 0), Limits{}, ErrTruncated, 3},
		{"truncated string", cat(0x05, "hel"), Limits{}, ErrTruncated, 4},
		{"truncated multibyte char", cat(0x01, 0xe4, 0xb8), Limits{}, ErrTruncated, 3},
		{"string chunk without a next chunk", cat('R', 0, 1, "a"), Limits{}, ErrTruncated, 4},
		{"string chunk followed by an int", cat('R', 0, 1, "a", 0x90), Limits{}, ErrSyntax, 4},
		{"bad lead byte", cat(0x02, "a", 0x80), Limits{}, ErrSyntax, 2},
		{"four-byte UTF-8 is not Java's", cat(0x02, "\xf0\x9f\x98\x80"), Limits{}, ErrSyntax, 1},
		{"binary chunk followed by a string", cat('A', 0, 1, "a", 0x01, "b"), Limits{}, ErrSyntax, 4},
		{"reserved tag", cat(0x40), Limits{}, ErrSyntax, 0},
		{"end where a value is", cat('Z'), Limits{}, ErrSyntax, 0},
		{"map value missing", cat('H', 0x90, 'Z'), Limits{}, ErrSyntax, 2},
		{"unterminated map", cat('H', 0x90, 0x90), Limits{}, ErrTruncated, 3},
		{"list longer than the input", cat(0x58, 0xd4, 0xff, 0xff, 0x90), Limits{}, ErrTruncated, 5},
		{"negative list length", cat(0x58, 0x8f), Limits{}, ErrSyntax, 1},
		{"undefined class", cat(0x60), Limits{}, ErrSyntax, 0},
		{"undefined class by index", cat(classCar, 'O', 0x91), Limits{}, ErrSyntax, len(classCar)},
		{"date as a class name", cat('C', 0x4b, 0, 0, 0, 0, 0x90, 0x60), Limits{}, ErrSyntax, 1},
		{"too deep", cat(0x79, 0x79, 0x79, 0x90), Limits{MaxDepth: 2}, ErrDepth, 2},
		{"too many classes", cat('C', 0x01, "a", 0x90, 'C', 0x01, "b", 0x90, 0x60), Limits{MaxClassDefs: 1}, ErrLimit, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Reader
			r.SetLimits(c.limits)
			r.Reset(c.in)
			err := r.Skip()
			if !errors.Is(err, c.want) {
				t.Fatalf("Skip = %v, want %v", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Offset != c.offset {
				t.Fatalf("error %v: offset want %d", err, c.offset)
			}
		})
	}
}

func TestSkipDepthDefault(t *testing.T) {
	deep := func(n int) []byte {
		b := make([]byte, 0, n+1)
		for range n {
			b = append(b, 0x79)
		}
		return append(b, 'N')
	}
	var r Reader
	r.Reset(deep(DefaultMaxDepth))
	if err := r.Skip(); err != nil {
		t.Fatalf("%d nested lists: %v", DefaultMaxDepth, err)
	}
	r.Reset(deep(DefaultMaxDepth + 1))
	if err := r.Skip(); !errors.Is(err, ErrDepth) {
		t.Fatalf("%d nested lists: %v", DefaultMaxDepth+1, err)
	}
}

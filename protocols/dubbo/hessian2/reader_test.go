package hessian2

import (
	"errors"
	"math"
	"testing"
)

func TestReadNumbers(t *testing.T) {
	ints := []int32{0, 1, -1, -16, 47, 48, -17, -2048, 2047, 2048, -2049,
		-262144, 262143, 262144, -262145, math.MaxInt32, math.MinInt32}
	for _, v := range ints {
		var r Reader
		r.Reset(AppendInt(nil, v))
		got, err := r.ReadInt()
		if err != nil || got != v || r.Len() != 0 {
			t.Errorf("int %d: read %d, %v, %d bytes left", v, got, err, r.Len())
		}
		r.Reset(AppendInt(nil, v))
		if l, err := r.ReadLong(); err != nil || l != int64(v) {
			t.Errorf("int %d read as a long: %d, %v", v, l, err)
		}
	}
	longs := []int64{0, 15, -8, 16, -9, 2047, -2048, 2048, 262143, -262144, 262144,
		math.MaxInt32, math.MinInt32, math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxInt64, math.MinInt64}
	for _, v := range longs {
		var r Reader
		r.Reset(AppendLong(nil, v))
		got, err := r.ReadLong()
		if err != nil || got != v || r.Len() != 0 {
			t.Errorf("long %d: read %d, %v, %d bytes left", v, got, err, r.Len())
		}
	}
	var r Reader
	r.Reset(AppendLong(nil, 1))
	if _, err := r.ReadInt(); !errors.Is(err, ErrType) {
		t.Errorf("ReadInt of a long: %v", err)
	}
	r.Reset(cat(0x01, "a"))
	if _, err := r.ReadLong(); !errors.Is(err, ErrType) {
		t.Errorf("ReadLong of a string: %v", err)
	}
}

func TestReadBoolNullKind(t *testing.T) {
	var r Reader
	r.Reset(cat('T', 'F', 'N', 0x90))
	if r.PeekKind() != Bool {
		t.Fatalf("PeekKind = %v", r.PeekKind())
	}
	if v, err := r.ReadBool(); err != nil || !v {
		t.Fatalf("ReadBool = %v, %v", v, err)
	}
	if v, err := r.ReadBool(); err != nil || v {
		t.Fatalf("ReadBool = %v, %v", v, err)
	}
	if !r.ReadNull() || r.ReadNull() {
		t.Fatal("ReadNull did not read exactly one null")
	}
	if _, err := r.ReadBool(); !errors.Is(err, ErrType) {
		t.Fatalf("ReadBool of an int: %v", err)
	}
	if _, err := r.ReadInt(); err != nil || r.PeekKind() != Invalid {
		t.Fatalf("at the end: %v, %v", err, r.PeekKind())
	}
	if _, err := r.ReadBool(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ReadBool at the end: %v", err)
	}
}

func TestReadString(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
		// inPlace: the result must be a slice of the input.
		inPlace bool
	}{
		{"empty", cat(0x00), "", true},
		{"ascii", cat(0x05, "hello"), "hello", true},
		{"ascii long", cat(0x31, 0x00, rep("ab", 128)), rep("ab", 128), true},
		{"two and three byte", cat(0x03, "é中a"), "é中a", true},
		{"surrogate pair", cat(0x02, "\xed\xa0\xbd\xed\xb8\x80"), "😀", false},
		{"pair across chunks", cat('R', 0, 1, "\xed\xa0\xbd", 0x01, "\xed\xb8\x80"), "😀", false},
		{"lone high surrogate", cat(0x02, "\xed\xa0\xbda"), "\ufffda", false},
		{"lone low surrogate", cat(0x01, "\xed\xb8\x80"), "\ufffd", false},
		{"two highs", cat(0x03, "\xed\xa0\xbd\xed\xa0\xbd\xed\xb8\x80"), "\ufffd😀", false},
		{"java's NUL", cat(0x01, "\xc0\x80"), "\x00", false},
		{"overlong a", cat(0x01, "\xc1\xa1"), "a", false},
		{"stray continuation bits read as java does", cat(0x01, "\xc3\x29"), "é", false},
		{"chunks", cat('R', 0, 2, "ab", 'S', 0, 1, "c"), "abc", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Reader
			r.Reset(c.in)
			scratch := make([]byte, 0, 64)
			s, dst, err := r.ReadString(scratch)
			if err != nil {
				t.Fatalf("ReadString: %v", err)
			}
			if string(s) != c.want || r.Len() != 0 {
				t.Fatalf("ReadString = %q with %d bytes left, want %q", s, r.Len(), c.want)
			}
			if inInput := len(s) == 0 || &s[0] != &dst[:1][0]; inInput != c.inPlace && len(s) > 0 {
				t.Fatalf("result in the input: %v, want %v", inInput, c.inPlace)
			}
			if cap(s) != len(s) {
				t.Fatalf("result has spare capacity %d: appending to it would overwrite", cap(s)-len(s))
			}
		})
	}
}

func TestReadStringErrors(t *testing.T) {
	var r Reader
	r.Reset(cat('N'))
	if _, _, err := r.ReadString(nil); !errors.Is(err, ErrType) {
		t.Fatalf("ReadString of null: %v", err)
	}
	r.Reset(cat('R', 0, 1, "a", 0x91))
	if _, _, err := r.ReadString(nil); !errors.Is(err, ErrSyntax) {
		t.Fatalf("chunk followed by an int: %v", err)
	}
	r.Reset(cat(0x03, "ab"))
	if _, _, err := r.ReadString(nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short string: %v", err)
	}
}

func TestReadStringKeepsEarlierResults(t *testing.T) {
	var r Reader
	in := cat(0x01, "\xc1\xa1", 0x01, "\xc1\xa2", 0x01, "\xc1\xa3")
	r.Reset(in)
	var dst []byte // grows: earlier results must survive reallocation
	var got []string
	var held [][]byte
	for range 3 {
		s, d, err := r.ReadString(dst)
		if err != nil {
			t.Fatal(err)
		}
		dst = d
		held = append(held, s)
	}
	for _, s := range held {
		got = append(got, string(s))
	}
	if got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("results %q", got)
	}
}

func TestMapStartAndEnd(t *testing.T) {
	var r Reader
	r.Reset(cat('M', 0x03, "Foo", 0x01, "k", 0x90, 'Z', 'H', 'Z', 0x90))
	if err := r.ReadMapStart(); err != nil {
		t.Fatal(err)
	}
	if r.AtEnd() {
		t.Fatal("AtEnd before the entry")
	}
	if err := r.Skip(); err != nil {
		t.Fatal(err)
	}
	if err := r.Skip(); err != nil {
		t.Fatal(err)
	}
	if !r.AtEnd() || r.ReadEnd() != nil {
		t.Fatal("end of the typed map not read")
	}
	if err := r.ReadMapStart(); err != nil || !r.AtEnd() || r.ReadEnd() != nil {
		t.Fatalf("empty untyped map: %v", err)
	}
	if err := r.ReadMapStart(); !errors.Is(err, ErrType) {
		t.Fatalf("ReadMapStart of an int: %v", err)
	}
	if err := r.ReadEnd(); !errors.Is(err, ErrSyntax) {
		t.Fatalf("ReadEnd of an int: %v", err)
	}
}

func TestKindOf(t *testing.T) {
	want := map[byte]Kind{
		'N': Null, 'T': Bool, 0x90: Int, 'L': Long, 'D': Double, 0x4a: Date,
		0x00: String, 'R': String, 0x20: Binary, 'A': Binary, 'V': List, 0x78: List,
		'H': Map, 'M': Map, 'O': Object, 0x60: Object, 0x51: Ref, 'C': ClassDef, 'Z': End,
		0x40: Invalid, 'E': Invalid, 'G': Invalid, 'P': Invalid,
	}
	for tag, k := range want {
		if KindOf(tag) != k {
			t.Errorf("KindOf(0x%x) = %v, want %v", tag, KindOf(tag), k)
		}
	}
	if Kind(200).String() != "invalid" || Map.String() != "map" {
		t.Error("Kind.String")
	}
}

func TestErrorMessage(t *testing.T) {
	var r Reader
	r.Reset(cat(0x91, 0x40))
	_ = r.Skip()
	err := r.Skip()
	want := "hessian2: value at offset 1: malformed value (byte 0x40)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

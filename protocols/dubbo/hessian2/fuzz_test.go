package hessian2

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// FuzzSkip feeds arbitrary bytes to Skip. Nothing may panic, every error
// is an *Error with an offset inside the input, and wherever the reference
// decoder decodes one value consuming k bytes, Skip consumes exactly k
// bytes and the scalar readers read the same value. Where the two may
// rightly differ, the comparison is skipped, each case named below. The
// seed corpus is in testdata/fuzz/FuzzSkip, besides the seeds added here.
func FuzzSkip(f *testing.F) {
	for _, v := range refValues() {
		if b := refEncode(f, v); len(b) <= 4096 {
			f.Add(b)
		}
	}
	for _, s := range [][]byte{
		cat(classCar, 0x60, 0x03, "red", 0x08, "corvette"),
		cat('R', 0, 1, "\xed\xa0\xbd", 0x01, "\xed\xb8\x80"),
		cat(0x55, 0x04, "[int", 0x90, 'Z'),
		cat('M', 0x90, 0x91, 0x92, 'Z'),
		cat(0x51, 0x90),
		cat(0x4b, 0, 0, 0, 1),
		cat('A', 0, 1, "a", 0x21, "b"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Reader
		r.Reset(data)
		if err := r.Skip(); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(data) {
				t.Fatalf("Skip: %v is not an *Error inside the input", err)
			}
		} else if r.Offset() > len(data) || r.Offset() == 0 {
			t.Fatalf("Skip consumed %d of %d bytes", r.Offset(), len(data))
		}

		// The reference reads data followed by a reserved byte (0x40),
		// which no value may contain at its start, so that a value it
		// only ends by running out of input fails there.
		in := append(data[:len(data):len(data)], 0x40)
		r.Reset(in)
		err := r.Skip()
		if e := (*Error)(nil); errors.As(err, &e) && strings.HasSuffix(e.What, overLong) {
			return // the reference would allocate the count it read, up to gigabytes
		}
		v, k, refErr, panicked := refDecode(in)
		if panicked || refErr != nil {
			return // the reference refuses: Skip may accept, Java decides
		}
		if highSurrogate(data) {
			return // the reference reads these unlike Java (TestReferenceSurrogateDifference)
		}
		if registeredClass(&r) {
			return // the reference decodes its registered classes field by field, by Go type
		}
		if err != nil {
			if exempt(err, k == len(in)) {
				return
			}
			t.Fatalf("the reference decodes %d bytes (%T), Skip fails: %v", k, v, err)
		}
		if r.Offset() != k {
			t.Fatalf("Skip consumed %d bytes, the reference %d (%T)", r.Offset(), k, v)
		}
		compareScalar(t, in, v)
	})
}

// exempt reports whether Skip may refuse what the reference accepted:
// limits the reference does not have, a negative list length (the
// reference reads a typed list of negative length as empty; Java reads
// some such lists as empty and fails on others), or a value the reference
// read to the end of the input, reserved byte included. Both of the last
// come from how the reference ends a variable-length list: at any error
// wrapping io.EOF from within, which reaching the end of the input gives,
// and so does a 'Z' where a value is expected, however deep (Java refuses
// it, and so does Skip).
func exempt(err error, refAtEnd bool) bool {
	var e *Error
	errors.As(err, &e)
	switch {
	case errors.Is(err, ErrDepth), errors.Is(err, ErrLimit), refAtEnd:
		return true
	case errors.Is(err, ErrSyntax) && e.Tag == tagEnd:
		return true
	case errors.Is(err, ErrSyntax) && e.What == "list length (negative)":
		return true
	}
	return false
}

// highSurrogate reports whether b may hold the encoding of a high
// surrogate, which the reference reads unlike Java: 0xED and a byte whose
// low six bits are 0x20-0x2f (continuation bits are not checked, by Java
// nor by the reference).
func highSurrogate(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if c := b[i+1] & 0x3f; b[i] == 0xed && c >= 0x20 && c <= 0x2f {
			return true
		}
	}
	return false
}

// registeredClass reports whether a class that r read is registered with
// the reference (a Go type or one of its Java exceptions), which it then
// decodes with per-field decoders rather than value by value: it decodes
// an object of that class, whose fields are all null, and looks for the
// map it makes of unregistered classes.
func registeredClass(r *Reader) bool {
	for i := range r.Classes() {
		def, fields := r.Class(i)
		probe := append(append([]byte{}, def...), 0x60)
		for range fields {
			probe = append(probe, 'N')
		}
		v, _, err, panicked := refDecode(probe)
		if _, ok := v.(map[string]interface{}); !ok || err != nil || panicked {
			return true
		}
	}
	return false
}

// compareScalar checks that the scalar readers read what the reference
// decoded from in.
func compareScalar(t *testing.T, in []byte, v any) {
	var r Reader
	r.Reset(in)
	kind := KindOf(in[0])
	switch want := v.(type) {
	case string:
		if kind != String || !utf8.ValidString(want) {
			return // the reference keeps bytes Java decodes (and Reader with it)
		}
		got, _, err := r.ReadString(nil)
		if err != nil || string(got) != want {
			t.Fatalf("ReadString = %q, %v; the reference %q", got, err, want)
		}
	case int32:
		if kind != Int {
			return
		}
		if got, err := r.ReadInt(); err != nil || got != want {
			t.Fatalf("ReadInt = %d, %v; the reference %d", got, err, want)
		}
	case int64:
		if kind != Long {
			return
		}
		if got, err := r.ReadLong(); err != nil || got != want {
			t.Fatalf("ReadLong = %d, %v; the reference %d", got, err, want)
		}
	case bool:
		if kind != Bool {
			return
		}
		if got, err := r.ReadBool(); err != nil || got != want {
			t.Fatalf("ReadBool = %v, %v; the reference %v", got, err, want)
		}
	case nil:
		if kind == Null && !r.ReadNull() {
			t.Fatal("ReadNull did not read the reference's null")
		}
	}
}

var _ = hessian.NewDecoder

package hessian2

// Kind is the type of an encoded value, as told by its first byte.
type Kind uint8

// Value kinds. ClassDef is a class definition, which precedes the value
// (an object, or another class definition) that it introduces.
const (
	Invalid Kind = iota // a byte no value starts with
	Null
	Bool
	Int
	Long
	Double
	Date
	String
	Binary
	List
	Map
	Object
	Ref
	ClassDef
	End // 'Z', which ends variable-length lists and maps
)

var kindNames = [...]string{
	Invalid: "invalid", Null: "null", Bool: "bool", Int: "int", Long: "long",
	Double: "double", Date: "date", String: "string", Binary: "binary",
	List: "list", Map: "map", Object: "object", Ref: "ref",
	ClassDef: "class definition", End: "end",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// KindOf returns the kind of the value whose first byte is tag.
func KindOf(tag byte) Kind { return tags[tag].kind }

// Tag bytes used by name in the reader and the writer.
const (
	tagNull         = 'N'
	tagTrue         = 'T'
	tagFalse        = 'F'
	tagInt          = 'I'
	tagLong         = 'L'
	tagLongInt      = 0x59
	tagStringFinal  = 'S'
	tagStringChunk  = 'R'
	tagBinaryFinal  = 'B'
	tagBinaryChunk  = 'A'
	tagMapUntyped   = 'H'
	tagMapTyped     = 'M'
	tagEnd          = 'Z'
	tagClassDef     = 'C'
	tagObject       = 'O'
	tagRef          = 0x51
	tagListVarTyped = 0x55
	tagListFixTyped = 'V'
	tagListVar      = 0x57
	tagListFix      = 0x58

	stringShortMax = 0x3ff  // longest string in the two-byte form (0x30-0x33)
	chunkMax       = 0x8000 // UTF-16 units per chunk the writer emits, as Java does
)

// How the reader handles a tag.
const (
	hInvalid      uint8 = iota
	hFixed              // scalar of fixed total size (size)
	hString             // string chunk: final or not
	hBinary             // binary chunk: final or not
	hListVarTyped       // 0x55 type value* 'Z'
	hListFixTyped       // 'V' type int value*
	hListVar            // 0x57 value* 'Z'
	hListFix            // 0x58 int value*
	hListShortTyp       // 0x70-0x77 type value*
	hListShort          // 0x78-0x7f value*
	hMapUntyped         // 'H' (value value)* 'Z'
	hMapTyped           // 'M' type (value value)* 'Z'
	hObject             // 'O' int value*
	hObjectShort        // 0x60-0x6f value*
	hClassDef           // 'C' string int string*, then a value
	hRef                // 0x51 int
	hEnd                // 'Z'
)

type tagInfo struct {
	kind   Kind
	handle uint8
	size   uint8 // total bytes of a hFixed value, tag included
}

// tags describes every first byte, per the Hessian 2.0 grammar as Java's
// Hessian2Input reads it.
var tags = func() (t [256]tagInfo) {
	fixed := func(lo, hi int, k Kind, size uint8) {
		for c := lo; c <= hi; c++ {
			t[c] = tagInfo{k, hFixed, size}
		}
	}
	span := func(lo, hi int, k Kind, h uint8) {
		for c := lo; c <= hi; c++ {
			t[c] = tagInfo{k, h, 0}
		}
	}
	fixed('N', 'N', Null, 1)
	fixed('T', 'T', Bool, 1)
	fixed('F', 'F', Bool, 1)
	fixed(0x80, 0xbf, Int, 1)
	fixed(0xc0, 0xcf, Int, 2)
	fixed(0xd0, 0xd7, Int, 3)
	fixed('I', 'I', Int, 5)
	fixed(0xd8, 0xef, Long, 1)
	fixed(0xf0, 0xff, Long, 2)
	fixed(0x38, 0x3f, Long, 3)
	fixed(tagLongInt, tagLongInt, Long, 5)
	fixed('L', 'L', Long, 9)
	fixed(0x5b, 0x5c, Double, 1)
	fixed(0x5d, 0x5d, Double, 2)
	fixed(0x5e, 0x5e, Double, 3)
	fixed(0x5f, 0x5f, Double, 5)
	fixed('D', 'D', Double, 9)
	fixed(0x4a, 0x4a, Date, 9)
	fixed(0x4b, 0x4b, Date, 5)
	span(0x00, 0x1f, String, hString)
	span(0x30, 0x33, String, hString)
	span('S', 'S', String, hString)
	span('R', 'R', String, hString)
	span(0x20, 0x2f, Binary, hBinary)
	span(0x34, 0x37, Binary, hBinary)
	span('A', 'B', Binary, hBinary)
	span(tagListVarTyped, tagListVarTyped, List, hListVarTyped)
	span(tagListFixTyped, tagListFixTyped, List, hListFixTyped)
	span(tagListVar, tagListVar, List, hListVar)
	span(tagListFix, tagListFix, List, hListFix)
	span(0x70, 0x77, List, hListShortTyp)
	span(0x78, 0x7f, List, hListShort)
	span('H', 'H', Map, hMapUntyped)
	span('M', 'M', Map, hMapTyped)
	span('O', 'O', Object, hObject)
	span(0x60, 0x6f, Object, hObjectShort)
	span('C', 'C', ClassDef, hClassDef)
	span(tagRef, tagRef, Ref, hRef)
	span('Z', 'Z', End, hEnd)
	return t
}()

// isStringChunk reports whether c starts a string chunk.
func isStringChunk(c byte) bool { return tags[c].handle == hString }

// isBinaryChunk reports whether c starts a binary chunk.
func isBinaryChunk(c byte) bool { return tags[c].handle == hBinary }

// isIntTag reports whether c starts an int (the 32-bit kinds).
func isIntTag(c byte) bool { return c >= 0x80 && c <= 0xd7 || c == tagInt }

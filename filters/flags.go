package filters

import "strings"

// Flags is a set of Envoy response flags, the short codes access logs and
// metrics carry (%RESPONSE_FLAGS%). The zero value is no flag.
type Flags uint32

// The flags, in the order Envoy prints them.
var flagNames = [...]string{
	"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO",
}

// FlagFor returns the flag with Envoy's short name, 0 if there is none.
func FlagFor(name string) Flags {
	for i, n := range flagNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// String renders the flags comma-separated in Envoy's order; "" for none
// (access logs print "-").
func (f Flags) String() string {
	if f == 0 {
		return ""
	}
	var b strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// AppendTo appends the flags as String renders them, without allocating.
func (f Flags) AppendTo(dst []byte) []byte {
	first := true
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, n...)
			first = false
		}
	}
	return dst
}

package dubbo

// DefaultMaxInterned bounds the names an Interner keeps.
const DefaultMaxInterned = 1024

// Interner turns method names into strings, allocating once per distinct
// name. l7.InternMethod cannot serve: it knows HTTP's methods only and
// allocates for any other name, and Dubbo method names are the
// application's. Keep one per connection (a service has few methods); past
// Max names it stops remembering, and each new name costs a string. The
// zero value is ready, with Max DefaultMaxInterned. Not safe for
// concurrent use.
type Interner struct {
	// Max bounds the names kept; 0 means DefaultMaxInterned.
	Max int
	m   map[string]string
}

// String returns b as a string, the same one every time for a name kept.
func (in *Interner) String(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	limit := in.Max
	if limit <= 0 {
		limit = DefaultMaxInterned
	}
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < limit {
		in.m[s] = s
	}
	return s
}

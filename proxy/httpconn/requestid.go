package httpconn

import "math/rand/v2"

// newUUID writes a random (version 4) UUID into buf, as Envoy's uuid
// request-id extension generates x-request-id. The randomness is the
// runtime's fast generator, not crypto/rand: request ids must be unique,
// not secret, and this runs per request.
func newUUID(buf *[36]byte) []byte {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hex[c>>4], hex[c&15]
		j += 2
	}
	return buf[:]
}

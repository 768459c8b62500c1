package httpconn

import "crypto/rand"

// newUUID writes a random (version 4) UUID into buf and returns it as a
// string, as Envoy's uuid request-id extension generates x-request-id.
func newUUID(buf *[36]byte) string {
	var b [16]byte
	rand.Read(b[:])
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
	return string(buf[:])
}

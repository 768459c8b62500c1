package filters

import (
	"math/bits"

	"github.com/gowaypoint/waypoint/protocols/status"
)

// Flags is a set of Envoy response flags, the short codes access logs and
// metrics carry (%RESPONSE_FLAGS%). The zero value is no flag. Filters
// name a flag with its constant (SendLocalReply(429, body, FlagRL));
// FlagFor reads one from config text.
type Flags uint32

// The response flags, in the order Envoy prints them; each constant's
// comment is Envoy's short name and meaning.
const (
	FlagLH    Flags = 1 << iota // LH: the upstream failed a local health check
	FlagUH                      // UH: no healthy upstream host
	FlagUT                      // UT: upstream request timeout
	FlagLR                      // LR: connection local reset
	FlagUR                      // UR: upstream remote reset
	FlagUF                      // UF: upstream connection failure
	FlagUC                      // UC: upstream connection termination
	FlagUO                      // UO: upstream overflow (circuit breaking)
	FlagNR                      // NR: no route (or no filter chain) for the request
	FlagDI                      // DI: the request was delayed by fault injection
	FlagFI                      // FI: the request was aborted by fault injection
	FlagRL                      // RL: the request was rate limited locally
	FlagUAEX                    // UAEX: denied by an external authorization service
	FlagRLSE                    // RLSE: refused after a rate limit service error
	FlagDC                      // DC: downstream connection termination
	FlagURX                     // URX: upstream retry or connect attempt limit reached
	FlagSI                      // SI: stream idle timeout
	FlagIH                      // IH: invalid value in a strictly checked header
	FlagDPE                     // DPE: downstream protocol error
	FlagUMSDR                   // UMSDR: upstream max stream duration reached
	FlagRFCF                    // RFCF: response from a cache filter
	FlagNFCF                    // NFCF: no filter config found
	FlagDT                      // DT: request or connection over its max duration
	FlagUPE                     // UPE: upstream protocol error
	FlagNC                      // NC: no cluster
	FlagOM                      // OM: overload manager refused the request
	FlagDF                      // DF: DNS resolution failed
	FlagDO                      // DO: dropped by an overload drop policy
)

// flagNames holds the short names, bit i for Flags 1<<i.
var flagNames = [...]string{
	"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO",
}

// FlagFor returns the flag with Envoy's short name, 0 if there is none. It
// is for text (config, a status.Kind's flag); code uses the constants.
func FlagFor(name string) Flags {
	for i, n := range flagNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// FlagOf returns the flag of a failure's kind (Kind.ResponseFlag), 0 for
// none.
func FlagOf(k status.Kind) Flags { return FlagFor(k.ResponseFlag()) }

// String renders the flags comma-separated in Envoy's order; "" for none
// (access logs print "-"). One flag renders without allocating.
func (f Flags) String() string {
	if f == 0 {
		return ""
	}
	if f&(f-1) == 0 {
		if i := bits.TrailingZeros32(uint32(f)); i < len(flagNames) {
			return flagNames[i]
		}
		return ""
	}
	var buf [64]byte
	return string(f.AppendTo(buf[:0]))
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

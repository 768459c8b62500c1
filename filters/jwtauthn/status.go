package jwtauthn

import "strings"

// status is the outcome of verifying a requirement, as Envoy's
// jwt_verify_lib names it; its text is the local reply's body.
type status uint8

const (
	statusOK status = iota
	statusMissing
	statusNotYetValid
	statusExpired
	statusBadFormat
	statusHeaderParseError
	statusHeaderBadAlg
	statusHeaderNotImplementedAlg
	statusHeaderBadKid
	statusPayloadParseError
	statusSignatureParseError
	statusUnknownIssuer
	statusAudienceNotAllowed
	statusVerificationFail
	statusJwksNoValidKeys
	statusJwksKidAlgMismatch
	statusJwksFetchFail
)

var statusText = [...]string{
	statusOK:                      "OK",
	statusMissing:                 "Jwt is missing",
	statusNotYetValid:             "Jwt not yet valid",
	statusExpired:                 "Jwt is expired",
	statusBadFormat:               "Jwt is not in the form of Header.Payload.Signature",
	statusHeaderParseError:        "Jwt header is an invalid Base64url input or an invalid JSON",
	statusHeaderBadAlg:            "Jwt header [alg] field is not a string",
	statusHeaderNotImplementedAlg: "Jwt header [alg] field value is invalid",
	statusHeaderBadKid:            "Jwt header [kid] field is not a string",
	statusPayloadParseError:       "Jwt payload is an invalid Base64 or an invalid JSON",
	statusSignatureParseError:     "Jwt signature is an invalid Base64",
	statusUnknownIssuer:           "Jwt issuer is not configured",
	statusAudienceNotAllowed:      "Audiences in Jwt are not allowed",
	statusVerificationFail:        "Jwt verification fails",
	statusJwksNoValidKeys:         "Jwks doesn't have any valid public key",
	statusJwksKidAlgMismatch:      "Jwks doesn't have key to match kid or alg from Jwt",
	statusJwksFetchFail:           "Jwks remote fetch is failed",
}

// details are the response code details Envoy gives a denial:
// "jwt_authn_access_denied{<text, spaces as underscores>}", one string per
// status, made once.
var statusDetails = func() (d [len(statusText)]string) {
	for i, t := range statusText {
		d[i] = "jwt_authn_access_denied{" + strings.ReplaceAll(t, " ", "_") + "}"
	}
	return d
}()

func (s status) String() string { return statusText[s] }

// httpStatus is the local reply's status: 403 for an audience not
// allowed, 401 for everything else, as Envoy answers.
func (s status) httpStatus() int {
	if s == statusAudienceNotAllowed {
		return 403
	}
	return 401
}

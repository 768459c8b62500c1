package status

// gRPC status codes the proxy produces or maps (google.golang.org/grpc/codes
// values, restated so this package imports nothing).
const (
	GRPCOK                = 0
	GRPCCancelled         = 1
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCNotFound          = 5
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// GRPCFromHTTP maps an HTTP status to the gRPC status a gRPC client sees
// for it, as Envoy (and the gRPC spec's HTTP-to-gRPC table) maps it.
func GRPCFromHTTP(httpStatus int) int {
	switch httpStatus {
	case 200:
		return GRPCOK
	case 400:
		return GRPCInternal
	case 401:
		return GRPCUnauthenticated
	case 403:
		return GRPCPermissionDenied
	case 404:
		return GRPCUnimplemented
	case 429, 502, 503, 504:
		return GRPCUnavailable
	}
	return GRPCUnknown
}

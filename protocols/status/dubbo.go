package status

// The other Dubbo response statuses this package maps (status.go names
// those a local reply's kind gives).
const (
	DubboOK            = 20
	DubboClientTimeout = 30
	DubboBadResponse   = 50
	DubboServiceError  = 70
)

// DubboFromHTTP maps the HTTP status of a local reply that carries no
// kind (a filter's, or a fault's configured abort status) to the Dubbo
// status that says the same: 2xx OK (20); 400, 401 and 403 bad request
// (40: Dubbo has no status of its own for a denial); 404 service not
// found (60); 408 and 504 server timeout (31); 429 threadpool exhausted
// (100); any other 4xx bad request (40); anything else server error (80).
func DubboFromHTTP(code int) int {
	switch {
	case code >= 200 && code < 300:
		return DubboOK
	case code == 404:
		return DubboServiceNotFound
	case code == 408, code == 504:
		return DubboServerTimeout
	case code == 429:
		return DubboThreadpoolExhausted
	case code >= 400 && code < 500:
		return DubboBadRequest
	}
	return DubboServerError
}

// DubboFromLocal is the Dubbo status of a local reply: its kind's
// (Kind.DubboStatus) when it has one; else the kind its response flag
// names, when it names one (UH, NR, UT, UO, UF, NC, RBAC...), so that a
// failure keeps its precision past the HTTP status it was rendered with
// (an overflow and no healthy upstream are both 503); else DubboFromHTTP.
func DubboFromLocal(k Kind, httpStatus int, flag string) int {
	if k != Unknown {
		return k.DubboStatus()
	}
	if flag != "" {
		for i := range kinds {
			if kinds[i].flag == flag {
				return Kind(i).DubboStatus()
			}
		}
	}
	return DubboFromHTTP(httpStatus)
}

// HTTPFromDubbo maps a Dubbo response status to the HTTP status that
// telemetry, outlier detection and response filters see for it: 20 is
// 200; 30 and 31 504; 40 and 90 400; 50 502; 60 404; 100 503 (the
// provider is saturated); 70, 80 and any unknown status 500.
func HTTPFromDubbo(s uint8) int {
	switch s {
	case DubboOK:
		return 200
	case DubboClientTimeout, DubboServerTimeout:
		return 504
	case DubboBadRequest, DubboClientError:
		return 400
	case DubboBadResponse:
		return 502
	case DubboServiceNotFound:
		return 404
	case DubboThreadpoolExhausted:
		return 503
	}
	return 500
}

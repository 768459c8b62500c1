package status

// Dubbo response statuses the proxy produces or maps
// (org.apache.dubbo.remoting.exchange.Response's values, restated so this
// package imports nothing).
const (
	DubboOK                  = 20
	DubboClientTimeout       = 30
	DubboServerTimeout       = 31
	DubboBadRequest          = 40
	DubboBadResponse         = 50
	DubboServiceNotFound     = 60
	DubboServiceError        = 70
	DubboServerError         = 80
	DubboClientError         = 90
	DubboThreadpoolExhausted = 100
)

// DubboStatus is the Dubbo status a local reply for k carries: a bad or
// denied request 40, no route 60, an upstream timeout 31, a circuit
// breaker's refusal 100 (threadpool exhausted: the consumer may try
// another provider), and 80 (server error) for every other failure of the
// proxy or its upstream.
func (k Kind) DubboStatus() uint8 {
	switch k {
	case BadRequest, Denied:
		return DubboBadRequest
	case NoRoute:
		return DubboServiceNotFound
	case Timeout:
		return DubboServerTimeout
	case Overflow:
		return DubboThreadpoolExhausted
	}
	return DubboServerError
}

// DubboFromHTTP maps the HTTP status of a local reply (a filter's, or an
// abort's configured http_status) to the Dubbo status that says the same:
// 2xx OK (20); 400, 401 and 403 bad request (40: Dubbo has no status of
// its own for a denial); 404 service not found (60); 408 and 504 server
// timeout (31); 429 threadpool exhausted (100); any other 4xx bad request
// (40); anything else server error (80).
func DubboFromHTTP(code int) uint8 {
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

// DubboFromLocal is the Dubbo status of a local reply with this HTTP
// status and Envoy response flag: the flag's kind's status when the flag
// names one kind (UH, NR, UT, UO, UF, NC, RBAC...), so that a failure
// keeps its precision past the HTTP status it was rendered with (an
// overflow and no healthy upstream are both 503); else DubboFromHTTP.
func DubboFromLocal(httpStatus int, flag string) uint8 {
	if flag != "" {
		for k := range kinds {
			if kinds[k].flag == flag {
				return Kind(k).DubboStatus()
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

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// The two versions of the config the soak flips between, as istiod would
// push them after a change: the same routes and clusters, with
//
//	          x-soak-config   RBAC filter                        clusters' lb_policy
//	version a a               none                               ROUND_ROBIN
//	version b b               ALLOW the client's principal only  LEAST_REQUEST
//
// Listener main_internal (where the HBONE streams enter) routes /h2... to
// cluster soak-h2 (HTTP/2 to the pods) and the rest to soak (HTTP/1.1);
// both are EDS clusters over HBONE (no transport_socket) with the same
// endpoints and istiod's 10 s connect timeout, and the routes retry as
// istiod's default retry policy does. Every route adds x-soak-config to its
// responses, so that the load generator sees which version served each one.
var configNames = [2]string{"a", "b"}

// configHeader is the response header naming the config version.
const configHeader = "x-soak-config"

// accessLogFormat is what the access log keeps of each request it logs.
const accessLogFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ` +
	`%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" ` +
	`%DURATION%ms upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% attempts=%UPSTREAM_REQUEST_ATTEMPT_COUNT%` + "\n"

// listenersJSON is version v's listener, with an access log at logPath of
// the requests answered ≥ 300, with a response flag, or slower than 1 s.
func listenersJSON(v int, logPath string) string {
	accessLog, _ := json.Marshal([]any{map[string]any{
		"name": "envoy.access_loggers.file",
		"filter": map[string]any{"orFilter": map[string]any{"filters": []any{
			map[string]any{"statusCodeFilter": map[string]any{"comparison": map[string]any{"op": "GE", "value": map[string]any{"defaultValue": 300, "runtimeKey": "soak.unset"}}}},
			map[string]any{"durationFilter": map[string]any{"comparison": map[string]any{"op": "GE", "value": map[string]any{"defaultValue": 1000, "runtimeKey": "soak.unset"}}}},
			map[string]any{"responseFlagFilter": map[string]any{}},
		}}},
		"typedConfig": map[string]any{
			"@type":     "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
			"path":      logPath,
			"logFormat": map[string]any{"textFormatSource": map[string]any{"inlineString": accessLogFormat}},
		},
	}})
	var rbac string
	if v == 1 {
		rbac = fmt.Sprintf(`{"name": "envoy.filters.http.rbac", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
   "rules": {"policies": {"ns[default]-policy[soak-client]-rule[0]": {"permissions": [{"andRules": {"rules": [{"any": true}]}}],
    "principals": [{"andIds": {"ids": [{"orIds": {"ids": [{"filterState": {"key": "io.istio.peer_principal", "stringMatch": {"exact": %q}}}]}}]}}]}}},
   "shadowRulesStatPrefix": "istio_dry_run_allow_"}},`, idClient.String())
	}
	route := func(prefix, cluster string) string {
		return fmt.Sprintf(`{"match": {"prefix": %q}, "route": {"cluster": %q, "retryPolicy": {"retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "retriableStatusCodes": [503], "numRetries": 2}},
    "responseHeadersToAdd": [{"header": {"key": %q, "value": %q}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"}]}`, prefix, cluster, configHeader, configNames[v])
	}
	return `{"resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "main_internal", "internalListener": {},
 "filterChains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {
  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "statPrefix": "soak",
  "accessLog": ` + string(accessLog) + `,
  "httpFilters": [` + rbac + `{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
  "routeConfig": {"name": "soak", "virtualHosts": [{"name": "soak", "domains": ["*"], "routes": [
   ` + route("/h2", "soak-h2") + `,
   ` + route("/", "soak") + `]}]}}}]}]}]}`
}

// clustersJSON is version v's clusters.
func clustersJSON(v int) string {
	lb := [2]string{"ROUND_ROBIN", "LEAST_REQUEST"}[v]
	return fmt.Sprintf(`{"resources": [
 {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "soak", "type": "EDS", "connectTimeout": "10s", "lbPolicy": %[1]q,
  "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}}},
 {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "soak-h2", "type": "EDS", "connectTimeout": "10s", "lbPolicy": %[1]q,
  "edsClusterConfig": {"edsConfig": {"ads": {}, "resourceApiVersion": "V3"}},
  "typedExtensionProtocolOptions": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
   "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicitHttpConfig": {"http2ProtocolOptions": {}}}}}]}`, lb)
}

// endpointsJSON is the EDS of both clusters: the pods at addrs.
func endpointsJSON(addrs []netip.Addr) string {
	var eps strings.Builder
	for i, a := range addrs {
		if i > 0 {
			eps.WriteString(",")
		}
		fmt.Fprintf(&eps, `{"endpoint": {"address": {"socketAddress": {"address": %q, "portValue": %d}}}}`, a, podPort)
	}
	cla := func(name string) string {
		return fmt.Sprintf(`{"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "clusterName": %q, "endpoints": [{"lbEndpoints": [%s]}]}`, name, eps.String())
	}
	return `{"resources": [` + cla("soak") + "," + cla("soak-h2") + "]}"
}

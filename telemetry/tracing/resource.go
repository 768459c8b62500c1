package tracing

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rdv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/resource_detectors/v3"

	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// The resource detectors of the OpenTelemetry tracer (its resource_detectors), by the
// type of their typed_config, as Envoy picks their factories.
const (
	EnvironmentDetector = "envoy.tracers.opentelemetry.resource_detectors.environment"
	DynatraceDetector   = "envoy.tracers.opentelemetry.resource_detectors.dynatrace"
	StaticDetector      = "envoy.tracers.opentelemetry.resource_detectors.static_config"
)

// resourceEnv is the variable the environment detector reads.
const resourceEnv = "OTEL_RESOURCE_ATTRIBUTES"

// dynatraceFiles are the Dynatrace enrichment files, read in this order. A file whose name
// starts with dt_metadata_ is an indirection: it holds the path of the file to read (the
// OneAgent serves it; relative to the working directory). A var for tests.
var dynatraceFiles = []string{
	"dt_metadata_e617c525669e072eebe3d0f08212e8f2.properties",
	"/var/lib/dynatrace/enrichment/dt_metadata.properties",
	"/var/lib/dynatrace/enrichment/dt_host_metadata.properties",
}

var resourceAllowlist = pbcheck.Allowlist{
	"envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig":  pbcheck.F(),
	"envoy.extensions.tracers.opentelemetry.resource_detectors.v3.DynatraceResourceDetectorConfig":    pbcheck.F(),
	"envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig": pbcheck.F("attributes"),
}

// detectResource runs the detectors in order, as Envoy does when it makes the tracer, and
// merges what they find: a later detector's attribute replaces an earlier one's of the same
// key (service.name included: it then replaces service_name). The result is sorted by key;
// nil when nothing is detected. Errors are relative to resource_detectors.
func detectResource(pbs []*corev3.TypedExtensionConfig, log *slog.Logger) ([][2]string, error) {
	attrs := map[string]string{}
	for i, pb := range pbs {
		at := pbcheck.Idx("resource_detectors", i)
		var env rdv3.EnvironmentResourceDetectorConfig
		var dt rdv3.DynatraceResourceDetectorConfig
		var static rdv3.StaticConfigResourceDetectorConfig
		var cfg proto.Message
		switch pb.GetTypedConfig().MessageName() {
		case env.ProtoReflect().Descriptor().FullName():
			cfg = &env
		case dt.ProtoReflect().Descriptor().FullName():
			cfg = &dt
		case static.ProtoReflect().Descriptor().FullName():
			cfg = &static
		default:
			return nil, pbcheck.ErrAt(at, "unsupported resource detector %q (%s): only %s, %s and %s", pb.GetName(),
				pb.GetTypedConfig().GetTypeUrl(), EnvironmentDetector, DynatraceDetector, StaticDetector)
		}
		if err := pb.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			return nil, pbcheck.At(at+".typed_config", err)
		}
		if err := resourceAllowlist.Check(cfg.ProtoReflect()); err != nil {
			return nil, pbcheck.At(at+".typed_config", err)
		}
		var found [][2]string
		switch cfg := cfg.(type) {
		case *rdv3.EnvironmentResourceDetectorConfig:
			if v := os.Getenv(resourceEnv); v != "" {
				found = parseEnvResource(v, log)
			}
		case *rdv3.DynatraceResourceDetectorConfig:
			found = readDynatrace(dynatraceFiles, log)
		case *rdv3.StaticConfigResourceDetectorConfig:
			for k, v := range cfg.GetAttributes() {
				found = append(found, [2]string{k, v})
			}
		}
		for _, kv := range found {
			attrs[kv[0]] = kv[1]
		}
	}
	if len(attrs) == 0 {
		return nil, nil
	}
	out := make([][2]string, 0, len(attrs))
	for k, v := range attrs {
		out = append(out, [2]string{k, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out, nil
}

// parseEnvResource parses OTEL_RESOURCE_ATTRIBUTES as Envoy's environment detector does:
// pairs separated by commas, each a key and a value separated by '='; empty pieces are
// dropped (",," and "a==b" are fine), and a pair that is not then exactly a key and a value
// ("a", "a=", "=b", "a=b=c") is skipped with a warning. Nothing is trimmed or
// percent-decoded (Envoy does neither). A later pair of the same key wins.
func parseEnvResource(s string, log *slog.Logger) [][2]string {
	var out [][2]string
	for pair := range strings.SplitSeq(s, ",") {
		if pair == "" {
			continue
		}
		k, v, ok := splitPair(pair)
		if !ok {
			log.Warn("tracing: invalid resource attribute in "+resourceEnv+", skipped", "text", pair)
			continue
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// splitPair splits s into exactly two non-empty pieces at the runs of '=' in it.
func splitPair(s string) (k, v string, ok bool) {
	var pieces [2]string
	n := 0
	for p := range strings.SplitSeq(s, "=") {
		if p == "" {
			continue
		}
		if n == 2 {
			return "", "", false
		}
		pieces[n] = p
		n++
	}
	return pieces[0], pieces[1], n == 2
}

// readDynatrace reads the Dynatrace enrichment files: lines of key=value (trimmed; those
// not a key and a value are skipped), a later file's key winning. A missing file is
// expected (which ones exist depends on how Dynatrace is deployed); a warning is logged
// only when none gives anything.
func readDynatrace(files []string, log *slog.Logger) [][2]string {
	var out [][2]string
	failed := 0
	for _, name := range files {
		b, err := readEnrichment(name)
		if err != nil || len(b) == 0 {
			failed++
			continue
		}
		out = append(out, parseProperties(string(b))...)
	}
	if failed == len(files) {
		log.Warn("tracing: the Dynatrace resource detector is configured but found no enrichment file")
	}
	return out
}

func readEnrichment(name string) ([]byte, error) {
	if strings.HasPrefix(filepath.Base(name), "dt_metadata_") {
		p, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		// Envoy uses the content as it is; a trailing newline would make no path.
		name = strings.TrimSpace(string(p))
		if name == "" {
			return nil, nil
		}
	}
	return os.ReadFile(name)
}

// parseProperties parses key=value lines as Envoy's Dynatrace detector does.
func parseProperties(s string) [][2]string {
	var out [][2]string
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if k, v, ok := splitPair(line); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// dumpOrder is the order of Envoy's config dump sections, by type URL;
// a type not listed sorts last.
var dumpOrder = []string{
	"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
	"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
	"type.googleapis.com/envoy.admin.v3.EcdsConfigDump",
	"type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
	"type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
	"type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump",
	"type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
	"type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
}

const endpointsDumpURL = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"

// marshal renders m as Envoy does: protojson with proto field names,
// indented by two spaces (re-indented: protojson's own spacing varies from
// build to build on purpose).
var marshal = jsonMarshaler{protojson.MarshalOptions{UseProtoNames: true}}

// marshalAll also writes fields at their zero value, as Envoy writes
// /server_info (state LIVE is 0) and /memory.
var marshalAll = jsonMarshaler{protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}

type jsonMarshaler struct{ o protojson.MarshalOptions }

// write answers w with m as JSON, or 500 if m does not marshal.
func (j jsonMarshaler) write(w http.ResponseWriter, m proto.Message) {
	b, err := j.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, b)
}

func (j jsonMarshaler) Marshal(m proto.Message) ([]byte, error) {
	b, err := j.o.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// DumpQuery is a /config_dump query: resource selects the elements of one
// repeated field of the sections (e.g. dynamic_active_clusters), each
// becoming a config of its own; mask keeps only the named fields (of each
// section, or of each selected element); nameRegex keeps only resources
// whose name matches; includeEDS keeps the EndpointsConfigDump.
type DumpQuery struct {
	Resource   string
	Mask       []string
	NameRegex  *regexp.Regexp
	IncludeEDS bool
}

// dumpError is an error with the HTTP status Envoy answers it with.
type dumpError struct {
	status int
	msg    string
}

func (e *dumpError) Error() string { return e.msg }

// BuildDump makes the config dump of sections for q, in Envoy's section
// order.
func BuildDump(sections []*adminv3.ConfigDump, q DumpQuery) (*adminv3.ConfigDump, error) {
	var configs []*anypb.Any
	for _, s := range sections {
		configs = append(configs, s.GetConfigs()...)
	}
	ordered := make([]*anypb.Any, 0, len(configs))
	for _, url := range dumpOrder {
		for _, c := range configs {
			if c.GetTypeUrl() == url {
				ordered = append(ordered, c)
			}
		}
	}
	for _, c := range configs {
		if !known(c.GetTypeUrl()) {
			ordered = append(ordered, c)
		}
	}
	out := &adminv3.ConfigDump{}
	for _, c := range ordered {
		if c.GetTypeUrl() == endpointsDumpURL && !q.IncludeEDS {
			continue
		}
		m, err := c.UnmarshalNew()
		if err != nil {
			return nil, err
		}
		if q.Resource == "" {
			if q.NameRegex != nil {
				filterNames(m.ProtoReflect(), q.NameRegex)
			}
			if len(q.Mask) > 0 {
				trim(m.ProtoReflect(), q.Mask)
			}
			a, err := anypb.New(m)
			if err != nil {
				return nil, err
			}
			out.Configs = append(out.Configs, a)
			continue
		}
		fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(q.Resource))
		if fd == nil {
			continue
		}
		if !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			return nil, &dumpError{http.StatusBadRequest, fmt.Sprintf("%s is not a repeated field. Use ?mask=%s to get only this field", q.Resource, q.Resource)}
		}
		list := m.ProtoReflect().Get(fd).List()
		for i := 0; i < list.Len(); i++ {
			el := proto.Clone(list.Get(i).Message().Interface())
			if q.NameRegex != nil && !q.NameRegex.MatchString(resourceName(el.ProtoReflect())) {
				continue
			}
			if len(q.Mask) > 0 {
				if err := checkMask(el.ProtoReflect().Descriptor(), q.Mask); err != nil {
					return nil, err
				}
				trim(el.ProtoReflect(), q.Mask)
			}
			a, err := anypb.New(el)
			if err != nil {
				return nil, err
			}
			out.Configs = append(out.Configs, a)
		}
	}
	if q.Resource != "" && !hasField(ordered, q.Resource) {
		return nil, &dumpError{http.StatusNotFound, fmt.Sprintf("ConfigDump does not contain %s", q.Resource)}
	}
	return out, nil
}

func known(url string) bool {
	for _, u := range dumpOrder {
		if u == url {
			return true
		}
	}
	return false
}

// hasField reports whether some section's type has the field name.
func hasField(configs []*anypb.Any, name string) bool {
	for _, c := range configs {
		m, err := c.UnmarshalNew()
		if err != nil {
			continue
		}
		if m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name)) != nil {
			return true
		}
	}
	return false
}

// checkMask refuses a mask naming no field of d, as Envoy refuses a mask
// it cannot apply to a selected resource.
func checkMask(d protoreflect.MessageDescriptor, mask []string) error {
	for _, p := range mask {
		first, _, _ := strings.Cut(p, ".")
		if d.Fields().ByName(protoreflect.Name(first)) == nil {
			return &dumpError{http.StatusBadRequest, fmt.Sprintf("FieldMask %s could not be successfully used.", strings.Join(mask, ","))}
		}
	}
	return nil
}

// trim clears every field of m that no path of mask names (paths are
// dotted; a path into a message field keeps only its named sub-fields).
// Repeated fields are kept or cleared whole, as in protobuf's field masks.
func trim(m protoreflect.Message, mask []string) {
	type keep struct {
		whole bool
		sub   []string
	}
	keeps := map[protoreflect.Name]*keep{}
	for _, p := range mask {
		first, rest, nested := strings.Cut(p, ".")
		k := keeps[protoreflect.Name(first)]
		if k == nil {
			k = &keep{}
			keeps[protoreflect.Name(first)] = k
		}
		if nested {
			k.sub = append(k.sub, rest)
		} else {
			k.whole = true
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		k := keeps[fd.Name()]
		switch {
		case k == nil:
			m.Clear(fd)
		case !k.whole && fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap():
			trim(m.Mutable(fd).Message(), k.sub)
		}
		return true
	})
}

// filterNames drops, from every repeated message field of a section, the
// resources whose name does not match re.
func filterNames(m protoreflect.Message, re *regexp.Regexp) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			return true
		}
		list := v.List()
		kept := m.NewField(fd).List()
		for i := 0; i < list.Len(); i++ {
			if re.MatchString(resourceName(list.Get(i).Message())) {
				kept.Append(list.Get(i))
			}
		}
		m.Set(fd, protoreflect.ValueOfList(kept))
		return true
	})
}

// resourceName is the name of a dump element: its name field, else the
// name of the resource it wraps (a listener's, a cluster's, a route
// configuration's, a ClusterLoadAssignment's cluster_name).
func resourceName(m protoreflect.Message) string {
	fields := m.Descriptor().Fields()
	if fd := fields.ByName("name"); fd != nil && fd.Kind() == protoreflect.StringKind {
		if n := m.Get(fd).String(); n != "" {
			return n
		}
	}
	for _, n := range []protoreflect.Name{"cluster", "listener", "route_config", "endpoint_config", "secret", "active_state"} {
		fd := fields.ByName(n)
		if fd == nil || fd.Kind() != protoreflect.MessageKind || !m.Has(fd) {
			continue
		}
		inner := m.Get(fd).Message()
		if a, ok := inner.Interface().(*anypb.Any); ok {
			im, err := a.UnmarshalNew()
			if err != nil {
				continue
			}
			inner = im.ProtoReflect()
		}
		if name := resourceName(inner); name != "" {
			return name
		}
	}
	if fd := fields.ByName("cluster_name"); fd != nil && fd.Kind() == protoreflect.StringKind {
		return m.Get(fd).String()
	}
	return ""
}

func (src Sources) configDump(w http.ResponseWriter, r *http.Request) {
	if src.ConfigDump == nil {
		http.NotFound(w, r)
		return
	}
	qv := r.URL.Query()
	q := DumpQuery{Resource: qv.Get("resource"), IncludeEDS: qv.Has("include_eds")}
	if m := qv.Get("mask"); m != "" {
		q.Mask = strings.Split(m, ",")
	}
	if re := qv.Get("name_regex"); re != "" {
		var err error
		if q.NameRegex, err = regexp.Compile(re); err != nil {
			http.Error(w, "Error while parsing name_regex from "+re+": "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	sections, err := src.ConfigDump()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	dump, err := BuildDump(sections, q)
	if err != nil {
		status := http.StatusInternalServerError
		if de, ok := err.(*dumpError); ok {
			status = de.status
		}
		http.Error(w, err.Error(), status)
		return
	}
	marshal.write(w, dump)
}

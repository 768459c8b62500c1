package filters

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// DecodeTypedStruct decodes the config of a filter that takes a TypedStruct
// (xds.type.v3.TypedStruct or udpa.type.v1.TypedStruct, whose value reaches
// New as a *structpb.Struct) into v, a pointer to a struct whose fields
// carry json tags, as encoding/json reads them.
//
// It is strict, as a config decoder must be: a field v has no place for is
// refused, naming it by its path (`unknown field "limits.burst" (known:
// rate, size)`), with names matched exactly (encoding/json would take
// "Header" for "header"); so is a value of the wrong type ("deny: want
// []string, got string"). Fields of types that decode themselves
// (json.Unmarshaler, encoding.TextUnmarshaler) are checked by their own
// decoder. A nil cfg (an entry without a typed_config, or a TypedStruct
// without a value) leaves v as it is: set defaults before the call. Any
// other message is an error.
func DecodeTypedStruct(cfg proto.Message, v any) error {
	if cfg == nil {
		return nil
	}
	st, ok := cfg.(*structpb.Struct)
	if !ok {
		return fmt.Errorf("config is %T, want the value of a TypedStruct", cfg)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("filters.DecodeTypedStruct: want a non-nil pointer, got %T", v)
	}
	if err := checkNames("", structpb.NewStructValue(st), rv.Type().Elem()); err != nil {
		return err
	}
	data, err := protojson.Marshal(st)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // checkNames has found them all; a second guard
	if err := dec.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return fmt.Errorf("%s: want %v, got %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	return nil
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkNames walks val along t and returns an error naming the first
// field of a struct that t has no field for. Mismatched kinds are left to
// encoding/json.
func checkNames(path string, val *structpb.Value, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj := val.GetStructValue()
		if obj == nil {
			return nil
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(obj.GetFields())) {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown field %q (known: %s)", join(path, k), strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
			if err := checkNames(join(path, k), obj.GetFields()[k], ft); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj := val.GetStructValue()
		for k, e := range obj.GetFields() {
			if err := checkNames(join(path, k), e, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i, e := range val.GetListValue().GetValues() {
			if err := checkNames(path+"["+strconv.Itoa(i)+"]", e, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonFields maps the JSON names of struct t's fields, as encoding/json
// names them (tag name, else the Go name; "-" skipped; the fields of an
// embedded struct without a tag promoted), to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, typ := range jsonFields(ft) {
					if _, shadowed := out[n]; !shadowed {
						out[n] = typ
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

package rbac

import (
	"errors"
	"fmt"
	"math"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// MetadataSource is where a metadata rule reads the stream's dynamic
// metadata: *filters.Stream. Nil for a network filter, whose metadata
// rules see no metadata.
type MetadataSource interface {
	DynamicMetadata(namespace string) *structpb.Struct
}

// metadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher:
// the value at path in the filter's namespace, matched by value, inverted
// when invert is set. As Envoy, a path that leaves the structs (a key
// missing, a value on the way that is not a struct) yields a null value.
type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func compileMetadataMatcher(pb *matcherv3.MetadataMatcher) (*metadataMatcher, error) {
	m := &metadataMatcher{filter: pb.GetFilter(), invert: pb.GetInvert()}
	if m.filter == "" {
		return nil, pbcheck.ErrAt("filter", "required")
	}
	if len(pb.GetPath()) == 0 {
		return nil, pbcheck.ErrAt("path", "at least one segment is required")
	}
	for i, s := range pb.GetPath() {
		if s.GetKey() == "" {
			return nil, pbcheck.ErrAt(pbcheck.Idx("path", i)+".key", "required")
		}
		m.path = append(m.path, s.GetKey())
	}
	if pb.GetValue() == nil {
		return nil, pbcheck.ErrAt("value", "required")
	}
	v, err := compileValueMatcher(pb.GetValue())
	if err != nil {
		return nil, pbcheck.At("value", err)
	}
	m.value = v
	return m, nil
}

func (m *metadataMatcher) matches(src MetadataSource) bool {
	var v *structpb.Value
	if src != nil {
		if st := src.DynamicMetadata(m.filter); st != nil {
			v = lookup(st, m.path)
		}
	}
	return m.value.matches(v) != m.invert
}

// lookup walks path through st; nil when the path leaves the structs.
func lookup(st *structpb.Struct, path []string) *structpb.Value {
	var v *structpb.Value
	for i, k := range path {
		if i > 0 {
			st = v.GetStructValue()
			if st == nil {
				return nil
			}
		}
		v = st.GetFields()[k]
		if v == nil {
			return nil
		}
	}
	return v
}

type valueKind uint8

const (
	valueNull valueKind = iota
	valueDoubleExact
	valueDoubleRange
	valueString
	valueBool
	valuePresent
	valueList
	valueOr
)

// valueMatcher is a compiled envoy.type.matcher.v3.ValueMatcher.
type valueMatcher struct {
	kind     valueKind
	str      *route.StringMatcher
	b        bool
	lo, hi   float64 // double_match: exact (lo) or range [lo, hi)
	children []valueMatcher
}

func compileValueMatcher(pb *matcherv3.ValueMatcher) (valueMatcher, error) {
	var m valueMatcher
	var err error
	switch p := pb.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		m.kind = valueNull
	case *matcherv3.ValueMatcher_DoubleMatch:
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			m.kind, m.lo = valueDoubleExact, d.Exact
		case *matcherv3.DoubleMatcher_Range:
			m.kind, m.lo, m.hi = valueDoubleRange, d.Range.GetStart(), d.Range.GetEnd()
		default:
			return m, pbcheck.ErrAt("double_match", "one of exact or range is required")
		}
	case *matcherv3.ValueMatcher_StringMatch:
		m.kind = valueString
		if m.str, err = route.CompileStringMatcher(p.StringMatch); err != nil {
			return m, pbcheck.At("string_match", err)
		}
	case *matcherv3.ValueMatcher_BoolMatch:
		m.kind, m.b = valueBool, p.BoolMatch
	case *matcherv3.ValueMatcher_PresentMatch:
		m.kind, m.b = valuePresent, p.PresentMatch
	case *matcherv3.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return m, pbcheck.ErrAt("list_match.one_of", "required")
		}
		c, err := compileValueMatcher(one)
		if err != nil {
			return m, pbcheck.At("list_match.one_of", err)
		}
		m.kind, m.children = valueList, []valueMatcher{c}
	case *matcherv3.ValueMatcher_OrMatch:
		m.kind = valueOr
		m.children, err = compileAll(p.OrMatch.GetValueMatchers(), "or_match.value_matchers", "value matcher", compileValueMatcher)
	case nil:
		return m, errors.New("a match pattern is required")
	default:
		return m, fmt.Errorf("match pattern %T is not supported", p)
	}
	return m, err
}

// matches reports whether v (nil: no value) matches, as Envoy's value
// matchers do.
func (m *valueMatcher) matches(v *structpb.Value) bool {
	switch m.kind {
	case valueNull:
		_, null := v.GetKind().(*structpb.Value_NullValue)
		return v == nil || v.GetKind() == nil || null
	case valueDoubleExact:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		return ok && n.NumberValue == m.lo
	case valueDoubleRange:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		return ok && !math.IsNaN(n.NumberValue) && n.NumberValue >= m.lo && n.NumberValue < m.hi
	case valueString:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		return ok && m.str.MatchString(s.StringValue)
	case valueBool:
		b, ok := v.GetKind().(*structpb.Value_BoolValue)
		return ok && b.BoolValue == m.b
	case valuePresent:
		return m.b && v != nil && v.GetKind() != nil
	case valueList:
		l, ok := v.GetKind().(*structpb.Value_ListValue)
		if !ok {
			return false
		}
		for _, e := range l.ListValue.GetValues() {
			if m.children[0].matches(e) {
				return true
			}
		}
		return false
	case valueOr:
		for i := range m.children {
			if m.children[i].matches(v) {
				return true
			}
		}
		return false
	}
	return false
}

package jwtauthn

import (
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

type perRoutePB = jwtv3.PerRouteConfig

func pbUnmarshal(js string, pb *perRoutePB) error { return protojson.Unmarshal([]byte(js), pb) }

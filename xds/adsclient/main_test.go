package adsclient

import (
	"testing"

	"go.uber.org/goleak"
)

// Tests of this package bind 127.0.70.0/24.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

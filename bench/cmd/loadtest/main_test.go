package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Tests listen only on 127.0.40.0/24, on ports the kernel picks, so they
// can run beside a real load test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

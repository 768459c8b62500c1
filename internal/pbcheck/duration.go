package pbcheck

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// Duration converts an optional Duration, returning def when it is absent.
// Negative and out-of-range durations are errors.
func Duration(d *durationpb.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %v", v)
	}
	return v, nil
}

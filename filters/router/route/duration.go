package route

import "github.com/gowaypoint/waypoint/internal/pbcheck"

// duration converts an optional Duration; see pbcheck.Duration.
var duration = pbcheck.Duration

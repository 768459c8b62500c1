// Command waypoint is an L7 waypoint proxy for Istio's ambient mesh. The
// command itself is package waypointcmd; this file only links it, and is
// the shape of a custom build with filters of your own (docs/filters.md).
package main

import waypointcmd "github.com/gowaypoint/waypoint/cmd/waypointcmd"

func main() { waypointcmd.Main() }

//go:build race

package inbound

// raceEnabled: the race detector adds its own memory per goroutine, so
// memory figures are measured without it.
const raceEnabled = true

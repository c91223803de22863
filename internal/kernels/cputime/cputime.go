// Package cputime reads the CPU time consumed by the current process, so that benchmarks
// on a shared machine can report throughput per CPU-second next to wall-clock figures
// (wall time counts the time other processes hold the cores; CPU time does not).
package cputime

import "time"

// Process returns the user+system CPU time of the process so far, and false where the
// platform does not provide it.
func Process() (time.Duration, bool) { return process() }

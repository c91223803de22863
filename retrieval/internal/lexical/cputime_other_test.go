//go:build !linux

package lexical

import "time"

// threadCPU is unavailable off Linux (benchmarks then report no CPU time).
func threadCPU() time.Duration { return 0 }

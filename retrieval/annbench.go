package retrieval

import (
	"context"

	"github.com/ragkv/ragkv/retrieval/internal/ann/annbench"
)

// The synthetic vector-index benchmark behind `ragkv bench retrieval` (package
// retrieval/internal/ann/annbench), exported here because cmd/ragkv cannot import
// retrieval/internal packages.
type (
	// ANNBenchConfig describes one benchmark run.
	ANNBenchConfig = annbench.Config
	// ANNBenchSynthetic describes the generated data.
	ANNBenchSynthetic = annbench.Synthetic
	// ANNBenchPoint is a search operating point (nprobe, rescore).
	ANNBenchPoint = annbench.Point
	// ANNBenchResult is the report.
	ANNBenchResult = annbench.Result
)

// BenchANN runs the benchmark.
func BenchANN(ctx context.Context, cfg ANNBenchConfig) (*ANNBenchResult, error) {
	return annbench.Run(ctx, cfg)
}

package retrieval

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries       *prometheus.CounterVec
	querySeconds  *prometheus.HistogramVec
	ingested      prometheus.Counter
	ingestSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragkv_retrieval_queries_total", Help: "Retrieval searches, by mode.",
		}, []string{"mode"}),
		querySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ragkv_retrieval_query_seconds", Help: "Retrieval search latency, by mode.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"mode"}),
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragkv_retrieval_ingested_passages_total", Help: "Passages committed by ingests.",
		}),
		ingestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ragkv_retrieval_ingest_commit_seconds", Help: "Time to commit an ingest (embed, build shards, store).",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.querySeconds, m.ingested, m.ingestSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("retrieval: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

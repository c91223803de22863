package chunkcache

import "github.com/prometheus/client_golang/prometheus"

// collector exports per-tier metrics, read from the trackers and counters at scrape
// time (so they can never disagree with Stats).
type collector struct {
	c *Cache

	bytes, capacity, entries, pinned                          *prometheus.Desc
	hits, misses, evictions, admissions, rejections, promotes *prometheus.Desc
	demotes, chunks, corrupt, quarantined, errors             *prometheus.Desc
	quotaViolations                                           *prometheus.Desc
}

func newCollector(c *Cache) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ragkv_chunkcache_"+name, help, labels, nil)
	}
	return &collector{
		c:           c,
		bytes:       d("bytes", "Bytes of chunks held by the tier.", "tier"),
		capacity:    d("capacity_bytes", "The tier's byte budget.", "tier"),
		entries:     d("entries", "Chunks held by the tier.", "tier"),
		pinned:      d("pinned_bytes", "Bytes of soft- or hard-pinned chunks in the tier.", "tier"),
		hits:        d("hits_total", "Chunk reads served by the tier.", "tier"),
		misses:      d("misses_total", "Chunk reads the tier could not serve.", "tier"),
		evictions:   d("evictions_total", "Chunks evicted from the tier.", "tier"),
		admissions:  d("admissions_total", "New chunks admitted into the tier.", "tier"),
		rejections:  d("rejections_total", "Chunks rejected by the tier's admission filter.", "tier"),
		promotes:    d("promotions_total", "Chunks copied into the tier after a hit below it.", "tier"),
		demotes:     d("demotions_total", "Evicted chunks moved from the tier to the next one.", "tier"),
		chunks:      d("chunks", "Distinct chunks held in any tier."),
		corrupt:     d("corrupt_reads_total", "Reads from the tier that failed a checksum or did not parse.", "tier"),
		quarantined: d("quarantined_total", "Corrupt copies taken out of the tier (deleted, never served again).", "tier"),
		errors:      d("errors_total", "Operations on the shared tier that failed and were served as misses.", "tier"),
		quotaViolations: d("quota_violations_total",
			"Bytes a namespace held in the tier beyond its quota, summed after each operation (stays 0 unless quota enforcement is broken).", "tier"),
	}
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.bytes, m.capacity, m.entries, m.pinned, m.hits, m.misses,
		m.evictions, m.admissions, m.rejections, m.promotes, m.demotes, m.chunks, m.corrupt, m.quarantined, m.errors, m.quotaViolations} {
		ch <- d
	}
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	for _, t := range s.Tiers {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, t.Name)
		}
		cnt := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), t.Name)
		}
		g(m.bytes, float64(t.Bytes))
		g(m.capacity, float64(t.Capacity))
		g(m.entries, float64(t.Entries))
		g(m.pinned, float64(t.PinnedBytes))
		cnt(m.hits, t.Hits)
		cnt(m.misses, t.Misses)
		cnt(m.evictions, t.Evictions)
		cnt(m.admissions, t.Admissions)
		cnt(m.rejections, t.Rejections)
		cnt(m.promotes, t.Promotions)
		cnt(m.demotes, t.Demotions)
		cnt(m.corrupt, t.CorruptReads)
		cnt(m.quarantined, t.Quarantined)
		cnt(m.errors, t.Errors)
		if !t.Shared {
			cnt(m.quotaViolations, t.QuotaViolationBytes)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.chunks, prometheus.GaugeValue, float64(s.Chunks))
}

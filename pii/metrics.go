package pii

import "github.com/prometheus/client_golang/prometheus"

// Metric label names.
const (
	labelKind   = "kind"
	labelResult = "result"
)

// Results of a detokenization, the values of the result label.
const (
	resultOK         = "ok"
	resultShredded   = "shredded"
	resultRestricted = "restricted"
	resultNotFound   = "not_found"
	resultError      = "error"
)

// Metrics are the Prometheus metrics of the tokenizer and the vault. Labels
// are bounded: kind and result only, never tenant values, tokens or
// subjects.
type Metrics struct {
	// Findings counts tokenized values per kind (vigil_pii_findings_total).
	Findings *prometheus.CounterVec
	// ScannedBytes counts bytes of text scanned (vigil_pii_scanned_bytes_total).
	ScannedBytes prometheus.Counter
	// TokenizeDuration observes TokenizeMessage latency, vault writes included
	// (vigil_pii_tokenize_duration_seconds).
	TokenizeDuration prometheus.Histogram
	// VaultWrites counts values written to the vault (vigil_pii_vault_writes_total).
	VaultWrites prometheus.Counter
	// CacheHits and CacheMisses count stored-value cache lookups
	// (vigil_pii_cache_hits_total, vigil_pii_cache_misses_total).
	CacheHits, CacheMisses prometheus.Counter
	// Detokenizations counts Detokenize calls per result
	// (vigil_pii_detokenizations_total).
	Detokenizations *prometheus.CounterVec
	// Shreds counts shredded subjects (vigil_pii_shreds_total).
	Shreds prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg when reg is
// not nil. Registering twice with one registry panics, as prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_pii_findings_total", Help: "Personal data values tokenized, per kind.",
		}, []string{labelKind}),
		ScannedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pii_scanned_bytes_total", Help: "Bytes of text scanned for personal data.",
		}),
		TokenizeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pii_tokenize_duration_seconds", Help: "Time to tokenize one message, vault writes included.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		VaultWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pii_vault_writes_total", Help: "Encrypted values written to the vault.",
		}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pii_cache_hits_total", Help: "Values found already stored in the in-memory cache.",
		}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pii_cache_misses_total", Help: "Values not in the in-memory cache, sent to the vault.",
		}),
		Detokenizations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_pii_detokenizations_total", Help: "Detokenize requests, per result.",
		}, []string{labelResult}),
		Shreds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_pii_shreds_total", Help: "Data subjects crypto-shredded.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Findings, m.ScannedBytes, m.TokenizeDuration, m.VaultWrites,
			m.CacheHits, m.CacheMisses, m.Detokenizations, m.Shreds)
	}
	return m
}

// Package metrics exposes voicegw's Prometheus metrics: Alexa requests by
// skill, HTTP status and rejection reason, and their latency. Labels never
// carry user input beyond the configured skill names.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one process.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	turns    *prometheus.CounterVec
	calls    *prometheus.CounterVec
	callTime *prometheus.HistogramVec
	link     *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	cache    *prometheus.CounterVec
	reads    *prometheus.CounterVec
	refresh  *prometheus.CounterVec
}

var buckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 4, 6, 8}

// New registers voicegw's collectors and the Go and process collectors in
// a registry of its own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicegw_alexa_requests_total",
			Help: "Alexa requests by skill, HTTP status and rejection reason (\"\" when answered).",
		}, []string{"skill", "status", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "voicegw_alexa_request_seconds",
			Help:    "Time from a request's arrival to its answer.",
			Buckets: buckets,
		}, []string{"skill"}),
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicegw_turns_total",
			Help: "Turns by skill, intent and outcome (ok, status, timeout, unlinked, vault, missing, default).",
		}, []string{"skill", "intent", "outcome"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicegw_upstream_requests_total",
			Help: "Upstream calls by service and HTTP status (0: no answer).",
		}, []string{"service", "status"}),
		callTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "voicegw_upstream_request_seconds",
			Help:    "Time of one upstream call, retries included.",
			Buckets: buckets,
		}, []string{"service"}),
		link: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicegw_link_steps_total",
			Help: "Account-linking steps by result: code (created, repeated, ceiling, error), submit (redirect, wrong, limited, other_browser, spent, used, expired, csrf, …), callback (linked, other_browser, invalid, used, denied, exchange_failed, error).",
		}, []string{"step", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicegw_config_reloads_total",
			Help: "Configuration reloads (SIGHUP or --watch) by result: ok, failed (the running configuration is kept).",
		}, []string{"result"}),
	}
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "voicegw_secret_cache_total",
		Help: "Credential lookups by result: hit (fresh in the cache), miss (read from Vault), stale (served past its ttl while Vault fails).",
	}, []string{"result"})
	m.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "voicegw_vault_reads_total",
		Help: "Secret reads that reached Vault, by result: ok, not_found, error.",
	}, []string{"result"})
	m.refresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "voicegw_token_refreshes_total",
		Help: "Linked-token refreshes by result: ok, refused (the user must link again), failed (provider or Vault trouble, timeout).",
	}, []string{"result"})
	reg.MustRegister(m.requests, m.latency, m.turns, m.calls, m.callTime, m.link, m.reloads, m.cache, m.reads, m.refresh,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe implements alexa.Observer. An unknown skill name is reported as
// "" so that a client cannot create label values.
func (m *Metrics) Observe(skill string, status int, reason string, took time.Duration) {
	if status == http.StatusNotFound {
		skill = ""
	}
	m.requests.WithLabelValues(skill, strconv.Itoa(status), reason).Inc()
	m.latency.WithLabelValues(skill).Observe(took.Seconds())
}

// Turn implements engine.Observer.
func (m *Metrics) Turn(skill, intent, outcome string, took time.Duration) {
	m.turns.WithLabelValues(skill, intent, outcome).Inc()
}

// Call implements engine.Observer.
func (m *Metrics) Call(service string, status int, took time.Duration) {
	m.calls.WithLabelValues(service, strconv.Itoa(status)).Inc()
	m.callTime.WithLabelValues(service).Observe(took.Seconds())
}

// LinkStep implements linking.Observer; step and result are fixed words
// of the linking package, never request input.
func (m *Metrics) LinkStep(step, result string) {
	m.link.WithLabelValues(step, result).Inc()
}

// Reload counts a configuration reload by result (ok, failed).
func (m *Metrics) Reload(result string) {
	m.reloads.WithLabelValues(result).Inc()
}

// SecretCache implements auth.Observer.
func (m *Metrics) SecretCache(result string) { m.cache.WithLabelValues(result).Inc() }

// VaultRead implements auth.Observer.
func (m *Metrics) VaultRead(result string) { m.reads.WithLabelValues(result).Inc() }

// TokenRefresh implements auth.Observer.
func (m *Metrics) TokenRefresh(result string) { m.refresh.WithLabelValues(result).Inc() }

// Registry is the registry the metrics are in (for tests and for
// collectors of the wiring).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

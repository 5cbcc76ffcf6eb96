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
}

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
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 4, 6, 8},
		}, []string{"skill"}),
	}
	reg.MustRegister(m.requests, m.latency,
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

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

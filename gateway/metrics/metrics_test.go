package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/metrics"
)

func TestObserve(t *testing.T) {
	m := metrics.New()
	m.Observe("stocks", 200, "", 3*time.Millisecond)
	m.Observe("stocks", 200, "", 5*time.Millisecond)
	m.Observe("stocks", 400, "signature", time.Millisecond)
	m.Observe("attacker-chosen", 404, "unknown skill", time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`voicegw_alexa_requests_total{reason="",skill="stocks",status="200"} 2`,
		`voicegw_alexa_requests_total{reason="signature",skill="stocks",status="400"} 1`,
		`voicegw_alexa_requests_total{reason="unknown skill",skill="",status="404"} 1`,
		`voicegw_alexa_request_seconds_count{skill="stocks"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "attacker-chosen") {
		t.Error("an unknown skill name became a label value")
	}
}

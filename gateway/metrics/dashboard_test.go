package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/metrics"
)

// exported returns the names of every metric family m exports once each
// of its methods has been called.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.Observe("s", 200, "", time.Millisecond)
	m.Turn("s", "I", "ok", time.Millisecond)
	m.Call("api", 200, time.Millisecond)
	m.LinkStep("code", "created")
	m.Reload("ok")
	m.SecretCache("hit")
	m.VaultRead("ok")
	m.TokenRefresh("ok")
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct{ Name, Type, Query any } `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title      string
	Type       string
	Datasource *struct{ Type, UID string } `json:"datasource"`
	Targets    []struct{ Expr string }
	Panels     []panel
}

// TestDashboard: the Grafana dashboard in docs/ is for Grafana 10+, picks
// its Prometheus through a datasource variable, and every query names
// only metrics voicegw exports.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: Grafana 10 writes 36 or more", d.SchemaVersion)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable of type prometheus")
	}
	names := exported(t)
	// A metric name in PromQL: what stands before {, [ or ) and is no
	// function or keyword; histogram series carry _bucket, _sum, _count.
	metricRe := regexp.MustCompile(`\b((?:voicegw|go|process)_[a-z0-9_]+)\b`)
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				found := metricRe.FindAllString(tg.Expr, -1)
				if len(found) == 0 {
					t.Errorf("panel %q: query %q names no voicegw metric", p.Title, tg.Expr)
				}
				for _, n := range found {
					base := n
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if s, ok := strings.CutSuffix(n, suffix); ok && names[s] {
							base = s
						}
					}
					if !names[base] {
						t.Errorf("panel %q: %s is not a metric voicegw exports", p.Title, n)
					}
				}
			}
		}
	}
	walk(d.Panels)
	if queries < 10 {
		t.Errorf("only %d queries", queries)
	}
}

package web_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub/web"
)

// grafanaPanel is what the check reads of a dashboard's panel.
type grafanaPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

var metricName = regexp.MustCompile(`\btotem(?:hub)?_[a-z_]+`)

// exported returns the metric names of a scrape of a real hub with a
// totem: what the dashboard may name.
func exported(t *testing.T) map[string]bool {
	ctx, r := newRig(t)
	totemPublish(t, ctx, r, time.Unix(1796000000, 0))
	body := scrape(t, ctx, r)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		names[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+s] = true
			}
		}
	}
	// A declared metric may have no series in this scrape (the clock of
	// a totem that sent no operation yet): it is exported all the same.
	for _, n := range web.MetricNames() {
		names[n] = true
	}
	for _, n := range []string{"totemhub_batch_duration_seconds", "totemhub_ops_applied_total"} {
		if !names[n] {
			t.Fatalf("%s missing from the exported names", n)
		}
	}
	return names
}

// Every dashboard in deploy/grafana is well-formed (unique panel ids, a
// query per panel that is not a row) and every metric its queries name is
// one the hub exports: a renamed metric cannot leave a panel blank.
func TestGrafanaDashboards(t *testing.T) {
	files, _ := filepath.Glob("../../../deploy/grafana/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboard in deploy/grafana")
	}
	names := exported(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string         `json:"title"`
			UID    string         `json:"uid"`
			Panels []grafanaPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.Title == "" || d.UID == "" {
			t.Errorf("%s: no title or uid", f)
		}
		ids := map[int]bool{}
		queries := 0
		var walk func([]grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d twice", f, p.ID)
				}
				ids[p.ID] = true
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, q := range p.Targets {
					used := metricName.FindAllString(q.Expr, -1)
					if len(used) == 0 {
						t.Errorf("%s: panel %q query %s names no metric of the hub", f, p.Title, q.RefID)
					}
					for _, n := range used {
						if !names[n] {
							t.Errorf("%s: panel %q names %s, which the hub does not export", f, p.Title, n)
						}
					}
					queries++
				}
			}
		}
		walk(d.Panels)
		t.Logf("%s: %d panels, %d queries", filepath.Base(f), len(ids), queries)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

const (
	dashboardPath = "../../deploy/grafana/ragkv.json"
	alertsPath    = "../../deploy/prometheus/alerts.yml"
	alertsTest    = "../../deploy/prometheus/alerts_test.yml"
)

// recordingRegistry is a prometheus.Registry that remembers the name of every metric
// a collector describes (vectors included, whether or not they have children yet).
type recordingRegistry struct {
	*prometheus.Registry
	mu    sync.Mutex
	names map[string]bool
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegistry) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		if m := fqNameRE.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	r.mu.Lock()
	for _, n := range names {
		r.names[n] = true
	}
	r.mu.Unlock()
	return r.Registry.Register(c)
}

func (r *recordingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err) // as prometheus.Registry.MustRegister; test code only
		}
	}
}

// ragkvMetrics builds the whole server (every component, the shared stories260K model
// for the engine), runs a short load so that every vector has children, and returns
// each ragkv_* metric name with its type ("" if it was described but never gathered).
func ragkvMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	reg := &recordingRegistry{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	cs := startConsoleServer(t, reg)
	if !cs.engine {
		t.Skip("shared stories260K model not found: the engine's ragkv_blend_* metrics cannot be registered")
	}
	cs.ingestKB(t)
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- cs.load(t, stop) }()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	reg.mu.Lock()
	for n := range reg.names {
		if strings.HasPrefix(n, "ragkv_") {
			out[n] = -1
		}
	}
	reg.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if _, ok := out[mf.GetName()]; ok {
			out[mf.GetName()] = mf.GetType()
		}
	}
	return out
}

var metricRE = regexp.MustCompile(`\bragkv_[a-z0-9_]+`)

// checkMetricRefs reports every ragkv_* series name in expr that the registry does not
// export: a metric's own name, or name_bucket/_sum/_count of a histogram.
func checkMetricRefs(t *testing.T, where, expr string, metrics map[string]dto.MetricType) {
	t.Helper()
	for _, ref := range metricRE.FindAllString(expr, -1) {
		if _, ok := metrics[ref]; ok {
			continue
		}
		found := false
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base := strings.TrimSuffix(ref, suf)
			if typ, ok := metrics[base]; ok && base != ref {
				if typ != dto.MetricType_HISTOGRAM && typ != dto.MetricType_SUMMARY {
					t.Errorf("%s: %s: %s is not a histogram (type %v)", where, ref, base, typ)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %s is not a ragkv metric (expr %q)", where, ref, expr)
		}
	}
}

// grafanaDashboard is the part of Grafana's dashboard model (schema version 39) the
// test checks.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Time struct{ From, To string } `json:"time"`
}

type grafanaPanel struct {
	ID         int                         `json:"id"`
	Type       string                      `json:"type"`
	Title      string                      `json:"title"`
	GridPos    struct{ X, Y, W, H int }    `json:"gridPos"`
	Datasource *struct{ Type, UID string } `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON for a Grafana dashboard: %v", dashboardPath, err)
	}
	return d
}

// TestGrafanaDashboard: deploy/grafana/ragkv.json is a well-formed Grafana dashboard
// (unique panel ids, panels inside the 24-column grid without overlaps, a Prometheus
// datasource variable every query uses, PromQL on every graph) and every ragkv_* metric
// its queries name is exported by the server.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 || d.Time.From == "" || len(d.Panels) < 10 {
		t.Fatalf("dashboard header: uid %q title %q schema %d, %d panels", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Fatal("no Prometheus datasource variable")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("panel %q: id %d repeated or not positive", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if o, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at (%d, %d)", o, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		switch p.Type {
		case "row":
			continue
		case "timeseries", "stat", "gauge", "bargauge", "table":
		default:
			t.Errorf("panel %q: unknown type %q", p.Title, p.Type)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v", p.Title, tg)
			}
			refs[tg.RefID] = true
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %q ignores the $instance variable", p.Title, tg.Expr)
			}
		}
	}
	metrics := ragkvMetrics(t)
	referenced := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			checkMetricRefs(t, "dashboard panel "+p.Title, tg.Expr, metrics)
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				referenced[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	var missing []string
	for m := range metrics {
		if !referenced[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics no dashboard panel shows: %v", missing)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestPrometheusRules: the alerting rules name only metrics the server exports (and
// recording rules they define), cover the alerts the operators asked for, pass
// `promtool check rules` and their unit tests (`promtool test rules`), and every
// dashboard query parses as PromQL.
func TestPrometheusRules(t *testing.T) {
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	records, alerts := map[string]bool{}, map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
			}
			if r.Alert != "" {
				alerts[r.Alert] = true
			}
		}
	}
	for _, want := range []string{"RagkvChunkTierFull", "RagkvChunkTierThrashing", "RagkvHitRatioFalling", "RagkvCorruptReads",
		"RagkvEngineSaturated", "RagkvHighErrorRate"} {
		if !alerts[want] {
			t.Errorf("alert %s missing", want)
		}
	}
	recRE := regexp.MustCompile(`\bragkv:[a-z0-9_:]+`)
	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)")
		}
		for _, args := range [][]string{{"check", "rules", alertsPath}, {"test", "rules", alertsTest}} {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "SUCCESS") {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// The dashboard's queries, as recording rules, must parse.
		var sb strings.Builder
		sb.WriteString("groups:\n  - name: dashboard\n    rules:\n")
		for i, p := range loadDashboard(t).Panels {
			for j, tg := range p.Targets {
				e, _ := json.Marshal(strings.ReplaceAll(tg.Expr, "$instance", ".*"))
				fmt.Fprintf(&sb, "      - record: dashboard:panel%d_%d\n        expr: %s\n", i, j, e)
			}
		}
		f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
		if err := os.WriteFile(f, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("dashboard queries do not parse: %v\n%s", err, out)
		}
	})
	metrics := ragkvMetrics(t)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			checkMetricRefs(t, "rule "+name, r.Expr, metrics)
			for _, rec := range recRE.FindAllString(r.Expr, -1) {
				if !records[rec] {
					t.Errorf("rule %s uses %s, which no recording rule defines", name, rec)
				}
			}
		}
	}
}

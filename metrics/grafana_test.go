package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/metrics"
	"github.com/rediskit/rediskit/session"
)

const dashboardFile = "grafana/rediskit.json"

// dashboardQuery is one PromQL expression of the board, or one
// label_values(metric, label) variable query, with where it sits.
type dashboardQuery struct {
	where, expr string
}

// dashboardQueries reads every panel target (rows' nested panels included)
// and every query variable of a Grafana dashboard.
func dashboardQueries(t *testing.T, path string) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	}
	var board struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &board); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []dashboardQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(board.Panels)
	for _, v := range board.Templating.List {
		if v.Type != "query" {
			continue
		}
		// Grafana stores the query as a string or as {"query": "…"}.
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			q = obj.Query
		}
		out = append(out, dashboardQuery{"variable $" + v.Name, q})
	}
	return out
}

// exposition is what one scrape of /metrics exported: the families with
// their types and labels, and the names of the sample lines.
type exposition struct {
	families map[string]*dto.MetricFamily
	samples  map[string]bool
}

// scrapeLabels are added by Prometheus to every series it scrapes.
var scrapeLabels = []string{"instance", "job"}

// family resolves a series name as PromQL sees it to the family that
// exports it: counters and gauges by their own name, histograms by
// name_bucket, name_sum and name_count (never the bare family name),
// summaries by name, name_sum and name_count. The series must also be a
// sample line of the scrape.
func (e exposition) family(name string) (*dto.MetricFamily, error) {
	if !e.samples[name] {
		return nil, fmt.Errorf("no series %s in /metrics", name)
	}
	if mf, ok := e.families[name]; ok {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return nil, fmt.Errorf("%s is a histogram: select %[1]s_bucket, %[1]s_sum or %[1]s_count", name)
		}
		return mf, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if mf, ok := e.families[base]; ok {
			switch t := mf.GetType(); {
			case t == dto.MetricType_HISTOGRAM:
				return mf, nil
			case t == dto.MetricType_SUMMARY && suffix != "_bucket":
				return mf, nil
			}
		}
	}
	return nil, fmt.Errorf("series %s belongs to no family of /metrics", name)
}

var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// check returns what is wrong with one dashboard query: a name that selects
// no exported series, or a variable over a label the series does not carry.
func (e exposition) check(q dashboardQuery) error {
	expr, label := q.expr, ""
	if m := labelValuesQuery.FindStringSubmatch(q.expr); m != nil {
		expr, label = m[1], m[2]
	}
	names, err := promqlNames(expr)
	if err != nil {
		return fmt.Errorf("%s: %q: %v", q.where, q.expr, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: %q selects no metric", q.where, q.expr)
	}
	var errs []string
	for _, name := range names {
		mf, err := e.family(name)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if label != "" && !slices.Contains(scrapeLabels, label) && !hasLabel(mf, label) {
			errs = append(errs, fmt.Sprintf("%s has no label %s", name, label))
		}
	}
	if errs != nil {
		return fmt.Errorf("%s: %q: %s", q.where, q.expr, strings.Join(errs, "; "))
	}
	return nil
}

func hasLabel(mf *dto.MetricFamily, label string) bool {
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				return true
			}
		}
	}
	return false
}

// scrapeMetrics drives a client, a cache and a session store on a real
// redis-server so that every collector has samples, and returns what their
// /metrics endpoint serves.
func scrapeMetrics(t *testing.T) exposition {
	t.Helper()
	ctx := context.Background()
	srv := redistest.Start(t)
	cfg, err := rediskit.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	rdb := client.Redis()
	c, err := cache.New(rdb, cache.Options{Prefix: "g", Near: &cache.NearOptions{}}) // the near-tier panels need its series
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	store, err := session.New(rdb, session.Options{Prefix: "gs:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	load := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	if _, err := c.GetOrSet(ctx, "k", time.Minute, load); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "absent"); err != nil {
		t.Fatal(err)
	}
	s, err := store.Create(ctx, "alice", map[string]any{"n": 1}, session.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewClientCollector(client),
		metrics.NewCacheCollector("products", c),
		metrics.NewSessionCollector(store),
	)
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer hs.Close()
	req, err := http.NewRequest(http.MethodGet, hs.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	e := exposition{families: families, samples: map[string]bool{}}
	for line := range strings.Lines(string(body)) {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		e.samples[name] = true
	}
	return e
}

// TestDashboardQueriesNameExportedSeries: every metric a query of
// metrics/grafana/rediskit.json selects is a series that the collectors'
// /metrics endpoint exports, with samples, scraped from a real server.
func TestDashboardQueriesNameExportedSeries(t *testing.T) {
	queries := dashboardQueries(t, dashboardFile)
	if len(queries) < 20 {
		t.Fatalf("%s: only %d queries read", dashboardFile, len(queries))
	}
	e := scrapeMetrics(t)
	used := map[string]bool{}
	for _, q := range queries {
		if err := e.check(q); err != nil {
			t.Error(err)
			continue
		}
		names, _ := promqlNames(q.expr)
		for _, n := range names {
			if mf, err := e.family(n); err == nil {
				used[mf.GetName()] = true
			}
		}
	}
	var unused []string
	for name := range e.families {
		if strings.HasPrefix(name, "rediskit_") && !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	t.Logf("%d queries over %d families; exported but on no panel: %v", len(queries), len(used), unused)

	// The checker catches what a typo or a wrong suffix would break.
	for _, bad := range []string{
		`sum(rate(rediskit_client_comands_total[5m]))`,                                 // misspelled
		`histogram_quantile(0.99, rate(rediskit_client_command_duration_seconds[5m]))`, // histogram without _bucket
		`rate(rediskit_client_commands_total_bucket[5m])`,                              // suffix on a counter
		`rediskit_session_active / rediskit_session_sessions`,                          // one good name, one not
		`label_values(rediskit_cache_hits_total, node)`,                                // label the series lacks
		`{__name__="rediskit_session_active"}`,                                         // name the checker cannot see
		`rate(rediskit_session_active[5m`,                                              // unclosed range
	} {
		if err := e.check(dashboardQuery{"negative case", bad}); err == nil {
			t.Errorf("check accepted %q", bad)
		}
	}
	for _, good := range []string{
		`histogram_quantile(0.5, sum by (le) (rate(rediskit_client_command_duration_seconds_bucket[5m])))`,
		`rediskit_client_command_duration_seconds_count`,
		`label_values(rediskit_server_up, node)`,
	} {
		if err := e.check(dashboardQuery{"positive case", good}); err != nil {
			t.Errorf("check refused %q: %v", good, err)
		}
	}
}

// TestPromQLNames: the tokenizer returns metric names only, never
// functions, aggregations, keywords, label names, strings, numbers,
// durations or Grafana variables.
func TestPromQLNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (le, instance) (rate(a_bucket{job="x", le!="+Inf"}[5m] offset 1h))`, []string{"a_bucket"}},
		{`histogram_quantile(0.99, sum without(node) (irate(h_bucket[$__rate_interval])))`, []string{"h_bucket"}},
		{`a / on(instance) group_left(node) b`, []string{"a", "b"}},
		{`a * ignoring(x) group_right c > bool 1e-9`, []string{"a", "c"}},
		{`count(x) by (cache) and sum(y) or z unless w`, []string{"x", "y", "z", "w"}},
		{`label_replace(up{instance=~"$instance"}, "dst", "$1 by (x) foo", "src", "(.*)")`, []string{"up"}},
		{`topk(3, rec:rule:rate5m) + 0x1F - Inf + NaN`, []string{"rec:rule:rate5m"}},
		{`max_over_time(m[1h:5m]) @ start() # trailing comment bar`, []string{"m"}},
		{`sum(rate(s{l="}{"}[${__interval}])) / clamp_min(vector(1), .5)`, []string{"s"}},
		{"q{a=`raw\\`} # x", []string{"q"}},
		{`quantile(0.9, m) * scalar(count(n))`, []string{"m", "n"}},
	} {
		got, err := promqlNames(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`a{b="c"`, `a{b="c}`, `rate(a[5m`, `{__name__=~"rediskit_.*"}`, `"open`} {
		if names, err := promqlNames(bad); err == nil {
			t.Errorf("%q: no error (names %q)", bad, names)
		}
	}
}

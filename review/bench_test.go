package review_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
)

// BenchmarkQueue measures the console queue page and the JSON queue with
// 10k open alerts in the index (server-side filter, sort and paging of the
// in-memory index, then html/template rendering of one page of 50).
func BenchmarkQueue(b *testing.B) {
	const alerts = 10000
	e := newEnv(b, testConfig())
	ctx := context.Background()
	sevs := []vigil.Severity{vigil.SeverityLow, vigil.SeverityMedium, vigil.SeverityHigh, vigil.SeverityCritical}
	now := time.Now().UTC()
	for i := range alerts {
		v := &vigil.Verdict{
			ID: fmt.Sprintf("v-bench-%d", i), MessageID: fmt.Sprintf("m-bench-%d", i), Tenant: "acme",
			ConversationID: fmt.Sprintf("conv-%05d", i), RuleID: fmt.Sprintf("rule.%02d", i%20), RulesetVersion: "rs1",
			Severity: sevs[i%len(sevs)], Action: vigil.ActionAlert, Tier: 1,
			MessageSentAt: now.Add(-time.Duration(i) * time.Second), EvaluatedAt: now,
		}
		if _, err := e.bus.PublishVerdict(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	e.waitAlerts(tokAnn, "per_page=1", alerts)
	b.Logf("%d alerts indexed %s after the last publish", alerts, time.Since(start).Round(time.Millisecond))
	// Let the clears of the published creation events settle, so the
	// queries below measure a steady queue, not re-sorts after each change.
	time.Sleep(3 * time.Second)

	br := e.login(tokAnn)
	u, _ := url.Parse(e.http.URL)
	cookies := br.client.Jar.Cookies(&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/console/"})
	h := e.svc.Handler()
	cases := []struct{ name, path, tok string }{
		{"console/page1", "/console/queue", ""},
		{"console/page100", "/console/queue?page=100", ""},
		{"console/filtered", "/console/queue?severity=critical&rule=rule.03&min_age=1m", ""},
		{"console/dashboard", "/console/dashboard", ""},
		{"api/page1", "/v1/review/alerts", tokAnn},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// The machine is shared: besides wall time, report the process
			// CPU time per page (mostly this handler; NATS is idle here).
			cpu0 := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, tc.path, nil)
				if tc.tok != "" {
					req.Header.Set("Authorization", "Bearer "+tc.tok)
				}
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d", tc.path, rec.Code)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

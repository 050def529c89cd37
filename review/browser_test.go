package review_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/review"
)

// Screenshots of every console screen go to docs/console with
// -screenshots (go test -run TestBrowser ./review/ -args -screenshots),
// else to a temporary directory, so a plain test run leaves the tracked
// PNGs alone.
var saveScreenshots = flag.Bool("screenshots", false, "write console screenshots to docs/console")

var screenshotDir = "../docs/console"

// chromium finds the browser or fails with the install hint: a missing
// browser is a broken test setup, not a reason to skip.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: run scripts/chromium.sh (apt-get install -y chromium) or set CHROMIUM_PATH")
	return ""
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves a PNG of the whole page as docs/console/<name>.png.
func screenshot(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join(screenshotDir, name+".png"), buf, 0o644)
	}
}

func TestBrowserReviewFlow(t *testing.T) {
	e := newEnv(t, testConfig())
	// Background over the last day so the dashboard and queue have content:
	// verdicts of one rule, conversation and hour fold into one alert.
	now := time.Now().UTC()
	bg := []struct {
		conv, rule string
		sev        vigil.Severity
		hoursAgo   int
		n          int
	}{
		{"conv-bg-1", "guarantee.returns", vigil.SeverityMedium, 20, 3},
		{"conv-bg-2", "off_channel.whatsapp", vigil.SeverityLow, 14, 2},
		{"conv-bg-3", "guarantee.returns", vigil.SeverityHigh, 9, 5},
		{"conv-bg-4", "off_channel.whatsapp", vigil.SeverityLow, 6, 1},
		{"conv-bg-5", "threats.violence", vigil.SeverityHigh, 3, 2},
		{"conv-bg-6", "guarantee.returns", vigil.SeverityMedium, 1, 4},
	}
	for i, b := range bg {
		for j := range b.n {
			m := &vigil.Message{ID: fmt.Sprintf("m-bg-%d-%d", i, j), Tenant: "acme", ConversationID: b.conv,
				SentAt: now.Add(-time.Duration(b.hoursAgo)*time.Hour + time.Duration(j)*time.Second)}
			e.verdict(m, b.rule, b.sev, vigil.ActionAlert, 1)
		}
	}
	e.waitAlerts(tokPriv, "", len(bg))
	if !*saveScreenshots {
		screenshotDir = t.TempDir()
	}
	ctx := newBrowser(t)
	base := e.http.URL

	text := func(sel string) string {
		t.Helper()
		// textContent, not innerText: SVG text elements have no innerText.
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.Join(strings.Fields(s), " ")
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	// Sign in with a token on the login form.
	run("login",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		screenshot("login"),
		chromedp.SendKeys(chromedp.CSS(`#token`), tokPriv),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`table.queue`)),
	)
	run("dashboard before",
		chromedp.Navigate(base+"/console/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=open]`)),
	)
	if got := text(`[data-testid=open]`); got != fmt.Sprint(len(bg)) {
		t.Fatalf("dashboard open before = %q, want %d", got, len(bg))
	}
	run("queue live",
		chromedp.Navigate(base+"/console/queue"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live-connected]`)),
	)
	// A flagged message appears in the open queue without a reload.
	evil := `<script>document.title="pwned"</script> send the file to jane.doe@example.com before the announcement`
	e.flag("acme", "conv-mnpi", "mnpi.leak", vigil.SeverityCritical, vigil.ActionAlert, evil)
	run("alert appears",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-alert] a`)),
		chromedp.WaitVisible(`//tr[@data-alert]//a[text()="mnpi.leak"]`),
		screenshot("queue"),
	)
	if got := text(`[data-testid=count-open]`); got != fmt.Sprint(len(bg)+1) {
		t.Errorf("queue open count = %q, want %d", got, len(bg)+1)
	}
	// Open it: the conversation shows the message escaped, a chip for the
	// e-mail token and the matched span highlighted.
	run("open alert",
		chromedp.Click(`//tr[@data-alert]//a[text()="mnpi.leak"]`),
		chromedp.WaitVisible(chromedp.CSS(`#claim`)),
	)
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script").length`))
	if err != nil {
		t.Fatal(err)
	}
	if title == "pwned" || scripts != 0 {
		t.Fatalf("message markup executed: title %q, %d scripts in main", title, scripts)
	}
	if msg := text(`li.flagged .text`); !strings.Contains(msg, `<script>document.title="pwned"</script>`) || strings.Contains(msg, "jane.doe") {
		t.Errorf("flagged message shows %q", msg)
	}
	if chip := text(`li.flagged .chip-email`); !strings.Contains(chip, "⟦EMAIL:") {
		t.Errorf("email chip = %q", chip)
	}
	// Claim.
	run("claim",
		chromedp.Click(chromedp.CSS(`#claim`)),
		chromedp.WaitVisible(chromedp.CSS(`#close`)),
		screenshot("alert"),
	)
	if got := text(`[data-testid=state]`); got != "claimed" {
		t.Fatalf("state after claim = %q", got)
	}
	// Detokenize without a reason is refused.
	audits := e.streamCount(bus.StreamAudit)
	run("detokenize without reason",
		chromedp.Click(chromedp.CSS(`li.flagged details.detok summary`)),
		chromedp.Click(chromedp.CSS(`li.flagged .detok-btn`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=error]`)),
	)
	if got := text(`[data-testid=error]`); !strings.Contains(got, "needs a reason") {
		t.Errorf("refusal = %q", got)
	}
	if n := e.streamCount(bus.StreamAudit); n != audits {
		t.Fatalf("refused detokenize wrote %d audit events", n-audits)
	}
	run("detokenize with reason",
		chromedp.SendKeys(chromedp.CSS(`li.flagged .detok-reason`), "case 2026-117 evidence"),
		chromedp.Click(chromedp.CSS(`li.flagged .detok-btn`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=reveals]`)),
		screenshot("detokenize"),
	)
	if got := text(`[data-testid=reveal-value]`); got != "jane.doe@example.com" {
		t.Errorf("revealed = %q", got)
	}
	found := false
	for _, ev := range e.streamRecords(bus.StreamAudit) {
		if ev["action"] == review.AuditActionDetokenize && ev["actor"] == "pat" && ev["reason"] == "case 2026-117 evidence" {
			found = true
		}
	}
	if !found {
		t.Fatal("no detokenize audit event on AUDIT")
	}
	// Close with a disposition.
	run("close",
		chromedp.Click(chromedp.CSS(`#disp-escalated_to_case`)),
		chromedp.SendKeys(chromedp.CSS(`#close-reason`), "opened case 2026-117"),
		chromedp.Click(chromedp.CSS(`#close`)),
		chromedp.WaitVisible(chromedp.CSS(`#reopen-reason`)),
		screenshot("closed"),
	)
	if got := text(`[data-testid=state]`); got != "closed (escalated to case)" {
		t.Errorf("state after close = %q", got)
	}
	run("dashboard after",
		chromedp.Navigate(base+"/console/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=open]`)),
		screenshot("dashboard"),
	)
	for sel, want := range map[string]string{`[data-testid=open]`: fmt.Sprint(len(bg)), `[data-testid=closed]`: "1", `[data-testid=sev-critical]`: "0", `[data-testid=sev-high]`: "2"} {
		if got := text(sel); got != want {
			t.Errorf("dashboard %s = %q, want %q", sel, got, want)
		}
	}
}

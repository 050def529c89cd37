package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// TestMain re-executes the test binary as `vigil` when VIGIL_TEST_MAIN is
// set, so CLI tests run the real command in a child process (promtool's
// main_test.go pattern).
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(warehousetest.Main(m))
}

// vigilProc is a `vigil` child process with its stderr captured.
type vigilProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	lines  chan string
	done   chan struct{}
	code   int
}

func startVigil(t *testing.T, args ...string) *vigilProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_MAIN=1")
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &vigilProc{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// VIGIL_TEST_LOG_DIR keeps every child's stderr in a file there (the
	// fault suite kills children; their logs are the evidence).
	var logFile *os.File
	if dir := os.Getenv("VIGIL_TEST_LOG_DIR"); dir != "" {
		logFile, err = os.Create(filepath.Join(dir, fmt.Sprintf("vigil-%s-%d.log", args[0], cmd.Process.Pid)))
		if err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if logFile != nil {
				_, _ = logFile.WriteString(sc.Text() + "\n")
			}
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		err := cmd.Wait()
		if logFile != nil {
			_ = logFile.Close()
		}
		p.code = cmd.ProcessState.ExitCode()
		_ = err
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *vigilProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitLine returns the first stderr line matching re.
func (p *vigilProc) waitLine(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			t.Fatalf("vigil exited with %d before logging %s:\n%s", p.code, re, p.output())
		case <-timer.C:
			t.Fatalf("no line matching %s within %v:\n%s", re, within, p.output())
		}
	}
}

func (p *vigilProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("vigil still running after %v:\n%s", within, p.output())
	}
	return -1
}

var startedRE = regexp.MustCompile(`msg="vigil dev started" http=(\S+) nats=(\S+) clickhouse_http=(\S+)`)

func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded engines")
	}
	data := t.TempDir()
	p := startVigil(t, "dev", "--data", data, "--http", "127.0.0.1:0", "--nats-port", "-1", "--clickhouse-http", "127.0.0.1:0")
	m := p.waitLine(t, startedRE, 3*time.Minute)
	httpAddr, natsURL, chURL := m[1], m[2], m[3]

	// readyz: NATS streams and ClickHouse are up.
	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != 200 || !ready.Ready {
		t.Fatalf("readyz = %d %+v, want 200 ready", resp.StatusCode, ready)
	}

	// The ClickHouse HTTP interface answers a 26.x version, as curl sees it.
	resp, err = http.Get(chURL + "/?query=" + url.QueryEscape("SELECT version()"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "26.") {
		t.Fatalf("SELECT version() = %d %q, want 200 and 26.x", resp.StatusCode, body)
	}
	// Migrations ran: the archive table exists.
	resp, err = http.Get(chURL + "/?query=" + url.QueryEscape("SELECT count() FROM vigil.schema_migrations"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) == "0" {
		t.Fatalf("schema_migrations = %d %q, want applied migrations", resp.StatusCode, body)
	}

	// A plain NATS client can publish to the embedded server.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("nats client: %v", err)
	}
	sub, err := nc.SubscribeSync("hello.vigil")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("hello.vigil", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("round trip through embedded NATS: %v", err)
	}
	nc.Close()

	// The whole flow: ingest → tokenize → MESSAGES → evaluator (built-in
	// packs) → VERDICTS → sink → ClickHouse, with no raw PII in the archive.
	msg := `{"tenant":"acme","conversation_id":"c-1","sent_at":"2026-12-04T10:00:00Z",` +
		`"sender":{"id":"u-1","display_name":"Ann Lee","role":"advisor"},` +
		`"text":"Ann here, text me on WhatsApp at ann.lee@example.com, this fund has guaranteed returns"}`
	resp, err = http.Post("http://"+httpAddr+"/v1/messages", "application/json", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/messages = %d %s, want 202", resp.StatusCode, body)
	}
	query := func(q string) string {
		t.Helper()
		resp, err := http.Get(chURL + "/?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
		}
		return strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(30 * time.Second)
	for query("SELECT count() FROM vigil.verdicts FINAL WHERE rule_id = 'finance.promissory.guarantee'") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("no promissory verdict in ClickHouse after 30s:\n%s", p.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := query("SELECT count() FROM vigil.evaluations FINAL"); got != "1" {
		t.Errorf("evaluations = %s, want 1", got)
	}
	archived := query("SELECT text, sender_name FROM vigil.messages FINAL")
	for _, raw := range []string{"ann.lee@example.com", "Ann Lee"} {
		if strings.Contains(archived, raw) {
			t.Errorf("archive holds raw PII %q: %s", raw, archived)
		}
	}
	if !strings.Contains(archived, "⟦EMAIL:") {
		t.Errorf("archive text %q lacks an email token", archived)
	}

	// vigil replay rebuilds the projections from the streams without
	// changing what FINAL queries see.
	tr, err := http.Post(chURL+"/", "text/plain", strings.NewReader("TRUNCATE TABLE vigil.messages"))
	if err != nil {
		t.Fatal(err)
	}
	tr.Body.Close()
	if got := query("SELECT count() FROM vigil.messages"); got != "0" {
		t.Fatalf("messages after TRUNCATE = %s", got)
	}
	rp := startVigil(t, "replay", "--nats", natsURL, "--clickhouse", chURL+"/vigil", "--stream", "MESSAGES")
	if code := rp.wait(t, time.Minute); code != exitOK {
		t.Fatalf("vigil replay exit %d:\n%s", code, rp.output())
	}
	if got := query("SELECT count() FROM vigil.messages FINAL"); got != "1" {
		t.Errorf("messages after replay = %s, want 1", got)
	}

	// metrics are exposed.
	resp, err = http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("go_goroutines")) {
		t.Errorf("/metrics lacks go_goroutines")
	}

	// A second vigil dev on the same data directory is refused clearly.
	p2 := startVigil(t, "dev", "--data", data, "--http", "127.0.0.1:0", "--nats-port", "-1", "--clickhouse-http", "127.0.0.1:0")
	if code := p2.wait(t, time.Minute); code != exitFailure {
		t.Errorf("second vigil dev exit code = %d, want %d", code, exitFailure)
	}
	if out := p2.output(); !strings.Contains(out, "in use by another vigil") || !strings.Contains(out, "Try:") {
		t.Errorf("second vigil dev stderr = %q, want a clear data-directory-in-use error with a hint", out)
	}

	// SIGTERM drains and exits 0.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != exitOK {
		t.Fatalf("exit code after SIGTERM = %d, want 0:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), "stopped") {
		t.Errorf("no 'stopped' log line after SIGTERM")
	}
}

func TestDevMissingLibrary(t *testing.T) {
	p := startVigil(t, "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--nats-port", "-1",
		"--clickhouse-http", "127.0.0.1:0", "--chdb-lib", "/nonexistent/libchdb.so")
	if code := p.wait(t, time.Minute); code != exitFailure {
		t.Errorf("exit code = %d, want %d", code, exitFailure)
	}
	out := p.output()
	if !strings.Contains(out, "Error:") || !strings.Contains(out, "make deps") || strings.Contains(out, "panic") {
		t.Errorf("stderr = %q, want an Error: line naming make deps and no panic", out)
	}
}

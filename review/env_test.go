package review_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/review/workflow"
)

// Tokens of the test principals.
const (
	tokAnn   = "tok-ann-reviewer-acme"
	tokBob   = "tok-bob-reviewer-acme"
	tokPriv  = "tok-pat-privileged-acme"
	tokAdmin = "tok-root-admin-all"
	tokEve   = "tok-eve-reviewer-other"
)

func testConfig() review.Config {
	return review.Config{
		Tokens: map[string]workflow.Principal{
			tokAnn:   {Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer},
			tokBob:   {Name: "bob", Tenant: "acme", Role: workflow.RoleReviewer},
			tokPriv:  {Name: "pat", Tenant: "acme", Role: workflow.RolePrivileged},
			tokAdmin: {Name: "root", Tenant: workflow.AllTenants, Role: workflow.RoleAdmin},
			tokEve:   {Name: "eve", Tenant: "other", Role: workflow.RoleReviewer},
		},
		SessionKey: bytes.Repeat([]byte("k"), 32),
	}
}

// busAuditor writes the vault's audit events to the AUDIT stream.
type busAuditor struct{ b *bus.Bus }

func (a busAuditor) Audit(ctx context.Context, ev vigil.AuditEvent) error {
	_, err := a.b.PublishAudit(ctx, &ev)
	return err
}

func randomKey(t testing.TB) string {
	t.Helper()
	k := make([]byte, pii.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

type env struct {
	t      testing.TB
	srv    *bustest.Server
	bus    *bus.Bus
	svc    *review.Service
	tok    *pii.Tokenizer
	http   *httptest.Server
	detoks atomic.Int64
	seq    atomic.Int64
}

func newEnv(t testing.TB, cfg review.Config, opts ...review.Option) *env {
	t.Helper()
	e := &env{t: t, srv: bustest.New(t)}
	e.bus = e.srv.Bus(t, bus.Config{Memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: randomKey(t), TokenKey: randomKey(t)}})
	if err != nil {
		t.Fatal(err)
	}
	vault, err := pii.NewVault(e.bus.VaultKV(), keys, pii.WithAuditor(busAuditor{e.bus}))
	if err != nil {
		t.Fatal(err)
	}
	if e.tok, err = pii.NewTokenizer(vault); err != nil {
		t.Fatal(err)
	}
	opts = append([]review.Option{review.WithDetokenizer(review.DetokenizeFunc(
		func(ctx context.Context, tenant, token, actor, reason string) (string, error) {
			e.detoks.Add(1)
			return vault.Detokenize(ctx, tenant, token, pii.Request{Actor: actor, Reason: reason})
		}))}, opts...)
	svc, err := review.New(ctx, e.bus, cfg, opts...)
	if err != nil {
		t.Fatalf("review.New: %v", err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e.svc = svc
	e.http = httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		e.http.CloseClientConnections()
		e.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// flag tokenizes and publishes a message of conversation conv and a
// verdict of rule on it, and returns the stored (tokenized) message.
func (e *env) flag(tenant, conv, rule string, sev vigil.Severity, action vigil.Action, text string) *vigil.Message {
	e.t.Helper()
	n := e.seq.Add(1)
	now := time.Now().UTC()
	m := &vigil.Message{
		ID: fmt.Sprintf("m-%d-%d", n, now.UnixNano()), Tenant: tenant, ConversationID: conv,
		Sender: vigil.Participant{ID: "u1", DisplayName: "Alex Advisor", Role: "advisor"},
		Text:   text, SentAt: now, ReceivedAt: now,
	}
	ctx := context.Background()
	if err := e.tok.TokenizeMessage(ctx, m); err != nil {
		e.t.Fatalf("TokenizeMessage: %v", err)
	}
	if _, err := e.bus.PublishMessage(ctx, m); err != nil {
		e.t.Fatalf("PublishMessage: %v", err)
	}
	e.verdict(m, rule, sev, action, 1)
	return m
}

func (e *env) verdict(m *vigil.Message, rule string, sev vigil.Severity, action vigil.Action, tier int) {
	e.t.Helper()
	v := &vigil.Verdict{
		ID: vigil.VerdictID(m.ID, rule, "rs1"), MessageID: m.ID, Tenant: m.Tenant, ConversationID: m.ConversationID,
		RuleID: rule, RulesetVersion: "rs1", Severity: sev, Action: action, Tier: tier,
		Spans:         []vigil.Span{{Start: 0, End: min(len(m.Text), 9)}},
		MessageSentAt: m.SentAt, EvaluatedAt: time.Now().UTC(),
	}
	if _, err := e.bus.PublishVerdict(context.Background(), v); err != nil {
		e.t.Fatalf("PublishVerdict: %v", err)
	}
}

// waitAlerts polls the queue (state all) of tok until want alerts match.
func (e *env) waitAlerts(tok string, query string, want int) *workflow.Page {
	e.t.Helper()
	// Big queues take longer on a loaded machine: allow 2ms per alert.
	deadline := time.Now().Add(10*time.Second + time.Duration(want)*2*time.Millisecond)
	for {
		var pg workflow.Page
		status := e.api(tok, "GET", "/v1/review/alerts?state=all&"+query, nil, &pg)
		if status == 200 && pg.Total == want {
			return &pg
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("queue %q: got %d alerts (status %d), want %d", query, pg.Total, status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api calls the JSON API with bearer token tok and decodes the answer
// into out (when not nil). It returns the HTTP status.
func (e *env) api(tok, method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// streamCount returns the number of messages in a stream.
func (e *env) streamCount(name string) uint64 {
	e.t.Helper()
	st, err := e.bus.JetStream().Stream(context.Background(), name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		e.t.Fatalf("stream info %s: %v", name, err)
	}
	return info.State.Msgs
}

// streamRecords returns the JSON bodies of every message of a stream.
func (e *env) streamRecords(name string) []map[string]any {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.bus.JetStream().Stream(ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, _ := st.Info(ctx)
	var out []map[string]any
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			if err == jetstream.ErrMsgNotFound {
				continue
			}
			e.t.Fatalf("get %s/%d: %v", name, seq, err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			e.t.Fatalf("decode %s/%d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// browser is a console session (cookie jar) for one principal.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) login(tok string) *browser {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(e.http.URL+"/console/login", url.Values{"token": {tok}, "next": {"/console/queue"}})
	if err != nil {
		e.t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("login: status %d", resp.StatusCode)
	}
	return &browser{e: e, client: c}
}

func (b *browser) get(path string) (int, string) {
	b.e.t.Helper()
	resp, err := b.client.Get(b.e.http.URL + path)
	if err != nil {
		b.e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (b *browser) csrf(page string) string {
	b.e.t.Helper()
	_, body := b.get(page)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.e.t.Fatalf("no csrf token on %s", page)
	}
	return m[1]
}

func (b *browser) post(path string, form url.Values, header map[string]string) (int, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// simTarget acks every message like ingest does, refusing requests without
// the bearer token "t".
func simTarget(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"unauthorized","status":401}`)
			return
		}
		var m struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.URL.Path != "/v1/messages" {
			http.Error(w, `{"error":"bad","status":400}`, http.StatusBadRequest)
			return
		}
		n.Add(1)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": m.ID, "seq": n.Load()})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func TestSimulateCLI(t *testing.T) {
	target, _ := simTarget(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{
			name:       "human summary",
			args:       []string{"--target", target, "--token", "t", "--count", "40", "--rate", "0", "--rule-rate", "0.5"},
			wantCode:   exitOK,
			wantStdout: []string{"Simulated 40 messages over http to " + target, "acked 40, duplicates 0, failed 0", "ack latency      p50 ", "planted          ", "rule:"},
		},
		{
			name:       "json",
			args:       []string{"--target", target, "--token", "t", "--count", "10", "--rate", "0", "--json"},
			wantCode:   exitOK,
			wantStdout: []string{`"acked": 10`, `"p99_seconds"`, `"transport": "http"`},
		},
		{
			name:       "nothing acked",
			args:       []string{"--target", target, "--token", "wrong", "--count", "3", "--rate", "0"},
			wantCode:   exitFailure,
			wantStdout: []string{"errors           401×3"},
			wantStderr: "Error: none of 3 messages was acked\nTry: pass --token (or VIGIL_TOKEN) for the --tenant\n",
		},
		{
			name:       "bad transport",
			args:       []string{"--transport", "carrier-pigeon", "--count", "1"},
			wantCode:   exitUsage,
			wantStderr: "Error: bench: invalid run config: unknown transport \"carrier-pigeon\" (want http, ws or nats)\nTry: vigil simulate --help\n",
		},
		{
			name:       "bad mix",
			args:       []string{"--mix", "advisory=1,poker=2"},
			wantCode:   exitUsage,
			wantStderr: "Error: --mix: unknown kind \"poker\" (want advisory, support, gaming or clinic)\nTry: --mix advisory=4,support=3,gaming=2,clinic=1\n",
		},
		{
			name:       "rates above one",
			args:       []string{"--target", target, "--rule-rate", "0.8", "--pii-rate", "0.5"},
			wantCode:   exitUsage,
			wantStderr: "Error: bench: invalid mix: rule_rate and pii_rate must be in 0..1 and sum to at most 1\nTry: vigil simulate --help\n",
		},
		{
			name:       "stray argument",
			args:       []string{"now"},
			wantCode:   exitUsage,
			wantStderr: "Error: unexpected argument \"now\"\nTry: vigil simulate --help\n",
		},
		{
			name:       "target never ready",
			args:       []string{"--target", "http://127.0.0.1:1", "--wait", "300ms"},
			wantCode:   exitFailure,
			wantStderr: "Try: start 'vigil dev' (or pass --target), or raise --wait\n",
		},
		{
			name:       "help",
			args:       []string{"--help"},
			wantCode:   exitOK,
			wantStdout: []string{"Usage:\n  vigil simulate", "--transport  (env VIGIL_TRANSPORT)", "Default: http://127.0.0.1:8080"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, append([]string{"simulate"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tc.wantStderr != "" && !strings.HasSuffix(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want suffix %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

// TestSimulateInterrupted checks that --duration 0 runs until the context
// ends and still prints its summary.
func TestSimulateInterrupted(t *testing.T) {
	target, n := simTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"simulate", "--target", target, "--token", "t", "--rate", "20", "--duration", "0"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := n.Load(); got < 8 || got > 25 {
		t.Errorf("%d messages in 0.8s at 20/s, want ~16", got)
	}
	if !strings.Contains(stdout.String(), "failed 0") {
		t.Errorf("summary missing or failures after interrupt:\n%s", stdout.String())
	}
}

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"advisory=4,support=3,gaming=2,clinic=1", "gaming=1", "", "clinic=-1", "advisory=1e308,poker=2", "=,=", "support=NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 512 {
			return
		}
		m, err := parseMix(s)
		if err != nil {
			return
		}
		for _, w := range []float64{m.Advisory, m.Support, m.Gaming, m.Clinic} {
			if !(w >= 0) { // also rejects NaN
				t.Errorf("parseMix(%q) accepted weight %v", s, w)
			}
		}
	})
}

// TestSimulateEnv checks that flags fall back to VIGIL_* variables and that
// a VIGIL_CONFIG meant for `vigil serve` is ignored.
func TestSimulateEnv(t *testing.T) {
	target, n := simTarget(t)
	env := map[string]string{"VIGIL_CONFIG": "/nonexistent/serve.yaml", "VIGIL_TOKEN": "t", "VIGIL_TARGET": target, "VIGIL_COUNT": "5"}
	old := lookupEnv
	lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	t.Cleanup(func() { lookupEnv = old })
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--rate", "0"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if n.Load() != 5 {
		t.Errorf("%d messages acked, want 5 (VIGIL_COUNT)", n.Load())
	}
}

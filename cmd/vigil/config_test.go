package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, []byte("data: /from/file\nhttp: ':9000'\nnats_port: 4333\ntokens:\n  s3cret: acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantData string
		wantHTTP string
		wantPort int
	}{
		{name: "file over default", args: []string{"--config", file}, wantData: "/from/file", wantHTTP: ":9000", wantPort: 4333},
		{name: "env over file", args: []string{"--config", file}, env: map[string]string{"VIGIL_DATA": "/from/env"}, wantData: "/from/env", wantHTTP: ":9000", wantPort: 4333},
		{name: "flag over env", args: []string{"--config", file, "--data", "/from/flag"}, env: map[string]string{"VIGIL_DATA": "/from/env"}, wantData: "/from/flag", wantHTTP: ":9000", wantPort: 4333},
		{name: "config file from env", env: map[string]string{"VIGIL_CONFIG": file, "VIGIL_NATS_PORT": "5000"}, wantData: "/from/file", wantHTTP: ":9000", wantPort: 5000},
		{name: "defaults", wantData: "./d", wantHTTP: ":1", wantPort: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.String("config", "", "")
			data := fs.String("data", "./d", "")
			http := fs.String("http", ":1", "")
			port := fs.Int("nats-port", 1, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			fc, err := applyConfig(fs, lookup)
			if err != nil {
				t.Fatalf("applyConfig: %v", err)
			}
			if *data != tc.wantData || *http != tc.wantHTTP || *port != tc.wantPort {
				t.Errorf("got data=%q http=%q port=%d, want %q %q %d", *data, *http, *port, tc.wantData, tc.wantHTTP, tc.wantPort)
			}
			if tc.wantData == "/from/file" && fc.Tokens["s3cret"] != "acme" {
				t.Errorf("tokens from file = %v, want s3cret→acme", fc.Tokens)
			}
		})
	}
}

func TestApplyConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		wantErr string
	}{
		{name: "unknown key", file: "data: x\nbogus_key: 1\n", wantErr: `unknown key "bogus_key"`},
		{name: "bad value", file: "nats_port: lots\n", wantErr: "nats_port"},
		{name: "bad env", env: map[string]string{"VIGIL_NATS_PORT": "x"}, wantErr: "VIGIL_NATS_PORT"},
		{name: "malformed yaml", file: "data: [\n", wantErr: "config file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			cfg := fs.String("config", "", "")
			fs.String("data", "", "")
			fs.Int("nats-port", 1, "")
			if tc.file != "" {
				p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
				if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				*cfg = p
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, err := applyConfig(fs, lookup)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("applyConfig error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	// flock locks are per open file description, so a second open in the
	// same process conflicts just as another process would.
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another vigil") {
		t.Fatalf("second lock error = %v, want data directory in use", err)
	}
	l.release()
	l2, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.release()
}

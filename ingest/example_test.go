package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/pii"
)

// Wire ingest to an embedded JetStream and the pii tokenizer, then post one
// message with a tenant's bearer token.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "vigil-ingest-example")
	defer os.RemoveAll(dir)
	nats, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir, Port: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nats.Shutdown(ctx)
	nc, err := bus.Connect(ctx, nats.ClientURL(), bus.ConnectOptions{Name: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	b, err := bus.Open(ctx, nc, bus.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	key := func() string {
		k := make([]byte, pii.KeySize)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	keys, _ := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: key(), TokenKey: key()}})
	vault, _ := pii.NewVault(b.VaultKV(), keys)
	tok, _ := pii.NewTokenizer(vault)

	srv, err := ingest.New(b, tok, ingest.Config{Tokens: map[string]string{"s3cret": "acme"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", strings.NewReader(
		`{"id":"m-1","tenant":"acme","conversation_id":"deal-42","sender":{"id":"u-7","display_name":"Ann Lee"},`+
			`"text":"call me on +1 415 555 0100","sent_at":"2026-12-04T10:00:00Z"}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	// Output:
	// 202 {"id":"m-1","seq":1,"duplicate":false}
}

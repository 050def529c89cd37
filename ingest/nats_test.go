package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
)

func TestNATSRequestReply(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.ServeNATS(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ServeNATS(ctx); err == nil {
		t.Fatal("second ServeNATS succeeded")
	}
	nc := e.nats.Conn
	tenant := "acme.eu" // a dot: encoded into one subject token
	tests := []struct {
		name       string
		body       []byte
		wantStatus int
		wantField  string
		wantAcks   int
	}{
		{"one message", mustJSON(t, wireMsg("n1", tenant, "c", "hi")), 0, "", 1},
		{"batch", batchOf(t, 5, tenant), 0, "", 5},
		{"wrong tenant for subject", mustJSON(t, wireMsg("n2", "other", "c", "hi")), 403, "tenant", 0},
		{"bad JSON", []byte(`{`), 400, "", 0},
		{"missing sender", []byte(`{"tenant":"acme.eu","conversation_id":"c","text":"x","sent_at":"2026-12-04T10:00:00Z"}`), 400, "sender", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.streamMsgs(t)
			reply, err := nc.RequestWithContext(ctx, bus.IngestSubject(tenant), tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantStatus != 0 {
				eb := decode[errBody](t, reply.Data)
				if eb.Status != tt.wantStatus || eb.Field != tt.wantField {
					t.Fatalf("reply %s, want status %d field %q", reply.Data, tt.wantStatus, tt.wantField)
				}
				if e.streamMsgs(t) != before {
					t.Fatal("rejected request stored messages")
				}
				return
			}
			var acks []ingest.Ack
			if tt.wantAcks == 1 {
				acks = []ingest.Ack{decode[ingest.Ack](t, reply.Data)}
			} else {
				acks = decode[ingest.BatchAck](t, reply.Data).Acks
			}
			if len(acks) != tt.wantAcks || acks[0].Sequence == 0 {
				t.Fatalf("reply %s", reply.Data)
			}
			if got := e.streamMsgs(t); got != before+uint64(tt.wantAcks) {
				t.Fatalf("stream grew by %d, want %d", got-before, tt.wantAcks)
			}
		})
	}
	// Close drains the responder: afterwards nobody answers.
	if err := e.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request(bus.IngestSubject(tenant), mustJSON(t, wireMsg("late", tenant, "c", "x")), 300*time.Millisecond); err == nil {
		t.Fatal("request answered after Close")
	}
}

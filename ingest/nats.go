package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil/bus"
)

// ServeNATS answers ingest requests on vigil.ingest.<tenant token> (see
// bus.IngestSubject: the tenant id is base64url-encoded into one subject
// token) in queue group Config.NATSQueue, with Config.NATSWorkers
// concurrent workers, until [Server.Close]. The request body is one message
// JSON object or an array; the reply is the HTTP API's JSON ([Ack],
// [BatchAck] or an error body with "status"). A message's tenant must be
// the subject's tenant (403 otherwise): who may publish to which tenant's
// subject is decided by NATS permissions. It returns once subscribed.
func (s *Server) ServeNATS(ctx context.Context) error {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if s.natsSub != nil {
		return fmt.Errorf("%w: ServeNATS already running", ErrInvalidOption)
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	ch := make(chan *nats.Msg, s.cfg.NATSWorkers*4)
	sub, err := s.bus.Conn().ChanQueueSubscribe(bus.IngestWildcard, s.cfg.NATSQueue, ch)
	if err != nil {
		return fmt.Errorf("serve nats: %w", err)
	}
	if err := s.bus.Conn().FlushWithContext(ctx); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("serve nats: %w", err)
	}
	s.natsSub, s.natsCh = sub, ch
	for range s.cfg.NATSWorkers {
		s.wg.Add(1)
		s.natsWG.Add(1)
		go func() { // stopped by Close: ch closed after draining, or s.ctx on abort
			defer s.wg.Done()
			defer s.natsWG.Done()
			for {
				select {
				case m, ok := <-ch:
					if !ok {
						return
					}
					s.serveNATSMsg(m)
				case <-s.ctx.Done():
					return
				}
			}
		}()
	}
	return nil
}

func (s *Server) serveNATSMsg(m *nats.Msg) {
	start := time.Now()
	reply, n, e := s.natsIngest(m)
	s.observe(TransportNATS, start, n, e)
	if e != nil {
		reply, _ = json.Marshal(e.body())
	}
	if m.Reply == "" {
		return // fire-and-forget requests get no answer, but were counted
	}
	if err := m.Respond(reply); err != nil {
		s.log.Warn("nats reply failed", "err", err)
	}
}

func (s *Server) natsIngest(m *nats.Msg) ([]byte, int, *Error) {
	tenant, err := bus.TenantFromIngestSubject(m.Subject)
	if err != nil {
		return nil, 0, badRequest("", "subject is not vigil.ingest.<tenant token>")
	}
	ws, batch, e := s.decodeAny(m.Data)
	if e != nil {
		return nil, 0, e
	}
	acks, e := s.ingest(s.ctx, tenant, ws, batch)
	if e != nil {
		return nil, 0, e
	}
	var v any = acks[0]
	if batch {
		v = BatchAck{Acks: acks}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, &Error{Status: http.StatusInternalServerError, Msg: "encode reply"}
	}
	return b, len(acks), nil
}

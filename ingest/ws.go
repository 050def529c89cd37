package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil/bus"
)

// WebSocket protocol. The client sends text frames, each one message JSON
// object or an array of them. The server answers, in order, one frame per
// message:
//
//	{"type":"ack","id":"…","seq":12,"duplicate":false}
//	{"type":"error","error":"…","field":"text","status":400}
//
// (an invalid array gets one error frame) and, later, one frame per action
// the evaluator publishes for a conversation the session sent into:
//
//	{"type":"action","verdict":{…vigil.Verdict…}}
//
// The server pings every WSPingInterval; a session that sends no message
// for WSIdleTimeout is closed (1001 "idle timeout"); a session whose send
// queue (WSSendQueue frames) fills up is closed (1008 "slow consumer").

// Frame types.
const (
	FrameAck    = "ack"
	FrameError  = "error"
	FrameAction = "action"
)

// Close reasons sent to WebSocket clients.
const (
	CloseSlowConsumer = "slow consumer: send queue full"
	CloseIdle         = "idle timeout"
	CloseShutdown     = "server shutting down"
	ClosePingTimeout  = "ping timeout"
)

type ackFrame struct {
	Type string `json:"type"`
	Ack
}

type errorFrame struct {
	Type string `json:"type"`
	errorBody
}

// session is one WebSocket connection. Its memory is the conn, the
// bounded send queue and two goroutines (reader = the handler, writer).
type session struct {
	srv    *Server
	c      *websocket.Conn
	tenant string // "" in open mode
	out    chan []byte

	lastRead atomic.Int64 // unix nanos of the last client message

	killOnce sync.Once
	kill     chan struct{}
	code     websocket.StatusCode
	reason   string

	mu    sync.Mutex
	convs []string // action subjects followed, oldest first
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if s.closed.Load() {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Msg: "server shutting down", RetryAfter: s.cfg.RetryAfter})
		return
	}
	tenant, e := s.authenticate(r.Header.Get("Authorization"))
	if e != nil {
		s.metrics.Requests.WithLabelValues(TransportWS, result(e)).Inc()
		writeError(w, e)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.WSOriginPatterns})
	if err != nil {
		return // Accept has answered the client
	}
	c.SetReadLimit(s.cfg.MaxRequestBytes)
	ss := &session{
		srv: s, c: c, tenant: tenant,
		out:  make(chan []byte, s.cfg.WSSendQueue),
		kill: make(chan struct{}),
	}
	ss.lastRead.Store(time.Now().UnixNano())
	s.metrics.WSSessions.Inc()
	s.wg.Add(1)
	defer func() {
		s.router.removeSession(ss)
		s.metrics.WSSessions.Dec()
		s.wg.Done()
	}()
	// Reads are not bound to the server's context: cancelling a read makes
	// coder/websocket drop the connection without a close frame, and the
	// writer must be able to send its close reason (shutdown, slow
	// consumer, idle) first. The writer's close ends the read; readCtx is
	// the safety net once the writer has exited.
	readCtx, cancelRead := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() { // owned by this handler, which waits for it below
		defer close(writerDone)
		defer cancelRead()
		ss.writeLoop()
	}()
	ss.readLoop(readCtx)
	ss.close(websocket.StatusNormalClosure, "")
	<-writerDone
}

// readLoop reads client frames until the connection ends.
func (ss *session) readLoop(ctx context.Context) {
	for {
		typ, data, err := ss.c.Read(ctx)
		if err != nil {
			return
		}
		ss.lastRead.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			ss.close(websocket.StatusUnsupportedData, "text frames only")
			return
		}
		if !ss.handle(data) {
			return
		}
	}
}

// handle ingests one frame and queues its acks; false ends the session.
func (ss *session) handle(data []byte) bool {
	s := ss.srv
	start := time.Now()
	ws, batch, e := s.decodeAny(data)
	var acks []Ack
	if e == nil {
		acks, e = s.ingest(s.ctx, ss.tenant, ws, batch)
		if e == nil {
			subjects := make([]string, 0, len(ws))
			for _, w := range ws {
				subjects = append(subjects, bus.ActionSubject(w.Tenant, w.ConversationID))
			}
			ss.follow(subjects)
		}
	}
	s.observe(TransportWS, start, len(acks), e)
	if e != nil {
		b, _ := json.Marshal(errorFrame{Type: FrameError, errorBody: e.body()})
		return ss.enqueue(b)
	}
	for _, a := range acks {
		b, _ := json.Marshal(ackFrame{Type: FrameAck, Ack: a})
		if !ss.enqueue(b) {
			return false
		}
	}
	return true
}

// enqueue queues a frame without blocking. A full queue means the client
// does not read fast enough: the session is closed rather than buffering
// without bound.
func (ss *session) enqueue(frame []byte) bool {
	select {
	case <-ss.kill:
		return false
	default:
	}
	select {
	case ss.out <- frame:
		return true
	default:
		ss.srv.metrics.WSSendQueueDrops.Inc()
		ss.close(websocket.StatusPolicyViolation, CloseSlowConsumer)
		return false
	}
}

// close asks the writer to close the connection with code and reason; the
// first call wins.
func (ss *session) close(code websocket.StatusCode, reason string) {
	ss.killOnce.Do(func() {
		ss.code, ss.reason = code, reason
		close(ss.kill)
	})
}

// writeLoop writes queued frames, pings and enforces the idle timeout. It
// alone writes to the connection and it performs the close handshake.
func (ss *session) writeLoop() {
	s := ss.srv
	ping := time.NewTicker(s.cfg.WSPingInterval)
	defer ping.Stop()
	idle := time.NewTimer(s.cfg.WSIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-ss.kill:
			_ = ss.c.Close(ss.code, ss.reason)
			return
		case <-s.ctx.Done():
			ss.close(websocket.StatusGoingAway, CloseShutdown)
		case f := <-ss.out:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WSWriteTimeout)
			err := ss.c.Write(ctx, websocket.MessageText, f)
			cancel()
			if err != nil {
				ss.close(websocket.StatusPolicyViolation, CloseSlowConsumer)
			}
		case <-ping.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WSWriteTimeout)
			err := ss.c.Ping(ctx)
			cancel()
			if err != nil {
				ss.close(websocket.StatusGoingAway, ClosePingTimeout)
			}
		case <-idle.C:
			since := time.Since(time.Unix(0, ss.lastRead.Load()))
			if since >= s.cfg.WSIdleTimeout {
				ss.close(websocket.StatusGoingAway, CloseIdle)
				continue
			}
			idle.Reset(s.cfg.WSIdleTimeout - since)
		}
	}
}

// follow subscribes the session to the action subjects of conversations
// it sent into, keeping at most WSMaxConversations (oldest dropped).
func (ss *session) follow(subjects []string) {
	created := false
	defer func() {
		if created {
			// Make sure the server has the interest before the client sees
			// the ack, so no action published after the ack is missed.
			ctx, cancel := context.WithTimeout(ss.srv.ctx, ss.srv.cfg.WSWriteTimeout)
			defer cancel()
			if err := ss.srv.bus.Conn().FlushWithContext(ctx); err != nil {
				ss.srv.log.Warn("flush action subscriptions failed", "err", err)
			}
		}
	}()
	for _, subj := range subjects {
		ss.mu.Lock()
		known := false
		for _, c := range ss.convs {
			if c == subj {
				known = true
				break
			}
		}
		var evict string
		if !known {
			ss.convs = append(ss.convs, subj)
			if len(ss.convs) > ss.srv.cfg.WSMaxConversations {
				evict = ss.convs[0]
				ss.convs = ss.convs[1:]
			}
		}
		ss.mu.Unlock()
		if known {
			continue
		}
		c, err := ss.srv.router.add(subj, ss)
		if err != nil {
			ss.srv.log.Warn("subscribe to actions failed", "err", err)
		}
		created = created || c
		if evict != "" {
			ss.srv.router.remove(evict, ss)
		}
	}
}

// router fans actions from NATS out to sessions. It holds one core-NATS
// subscription per followed subject, all delivering into one channel read
// by one goroutine, so a session costs no goroutine per conversation.
type router struct {
	srv  *Server
	ch   chan *nats.Msg
	mu   sync.Mutex
	subs map[string]*route
}

type route struct {
	sub      *nats.Subscription
	sessions map[*session]struct{}
}

const routerBuffer = 8192

func newRouter(s *Server) *router {
	return &router{srv: s, ch: make(chan *nats.Msg, routerBuffer), subs: map[string]*route{}}
}

// add routes subject to ss; created reports a new NATS subscription.
func (r *router) add(subject string, ss *session) (created bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.subs[subject]
	if rt == nil {
		sub, err := r.srv.bus.Conn().ChanSubscribe(subject, r.ch)
		if err != nil {
			return false, err
		}
		created = true
		rt = &route{sub: sub, sessions: map[*session]struct{}{}}
		r.subs[subject] = rt
	}
	rt.sessions[ss] = struct{}{}
	return created, nil
}

func (r *router) remove(subject string, ss *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(subject, ss)
}

func (r *router) removeLocked(subject string, ss *session) {
	rt := r.subs[subject]
	if rt == nil {
		return
	}
	delete(rt.sessions, ss)
	if len(rt.sessions) == 0 {
		_ = rt.sub.Unsubscribe()
		delete(r.subs, subject)
	}
}

func (r *router) removeSession(ss *session) {
	ss.mu.Lock()
	convs := ss.convs
	ss.convs = nil
	ss.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, subj := range convs {
		r.removeLocked(subj, ss)
	}
}

// run delivers actions until ctx ends, then unsubscribes everything.
func (r *router) run(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for subj, rt := range r.subs {
			_ = rt.sub.Unsubscribe()
			delete(r.subs, subj)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.ch:
			if !json.Valid(m.Data) {
				r.srv.log.Warn("dropping malformed action", "subject_bytes", len(m.Subject))
				continue
			}
			frame := make([]byte, 0, len(m.Data)+32)
			frame = append(frame, `{"type":"action","verdict":`...)
			frame = append(frame, m.Data...)
			frame = append(frame, '}')
			r.mu.Lock()
			var targets []*session
			if rt := r.subs[m.Subject]; rt != nil {
				targets = make([]*session, 0, len(rt.sessions))
				for ss := range rt.sessions {
					targets = append(targets, ss)
				}
			}
			r.mu.Unlock()
			for _, ss := range targets {
				ss.enqueue(frame)
			}
		}
	}
}

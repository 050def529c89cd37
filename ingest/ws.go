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
	"github.com/vigilhq/vigil"
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
// the evaluator publishes for a conversation the session sent into — or,
// with GET /v1/ws?actions=tenant, for every conversation of its tenant:
//
//	{"type":"action","verdict":{…vigil.Verdict…}}
//
// The server pings every WSPingInterval; a session that sends no message
// for WSIdleTimeout is closed (1001 "idle timeout"); a session whose send
// queue holds WSSendQueue replies (a request's acks or errors, or one
// action) when a new request or action arrives is closed (1008 "slow
// consumer"); the acks of one batch frame count as one reply, however many.

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
	CloseTextOnly     = "text frames only"
)

// closeLabel maps a close reason to the bounded reason label of
// vigil_ingest_ws_closes_total.
func closeLabel(reason string) string {
	switch reason {
	case CloseSlowConsumer:
		return "slow_consumer"
	case CloseIdle:
		return "idle"
	case CloseShutdown:
		return "shutdown"
	case ClosePingTimeout:
		return "ping_timeout"
	case CloseTextOnly:
		return "protocol"
	}
	return "client"
}

type ackFrame struct {
	Type string `json:"type"`
	Ack
}

type errorFrame struct {
	Type string `json:"type"`
	errorBody
}

// session is one WebSocket connection. An idle session owns only the
// handler goroutine blocked in Read, the conn, two timers and its small
// state: frames are written by a flusher goroutine that exists only while
// the queue is not empty, and pings run on timer callbacks. (A permanent
// writer goroutine would add ~8 KiB of stack to each of 50k sessions.)
type session struct {
	srv    *Server
	c      *websocket.Conn
	tenant string // "" in open mode

	lastRead atomic.Int64 // unix nanos of the last client message

	qmu      sync.Mutex
	queue    [][][]byte // replies to write (each one or more frames), at most WSSendQueue
	flushing bool       // a flusher goroutine is running
	dead     bool       // no new goroutines may start
	closing  bool       // close requested
	wg       sync.WaitGroup

	ping, idle *time.Timer
	stopShut   func() bool // unregisters the server-shutdown hook

	mu         sync.Mutex
	convs      []string // action subjects followed, oldest first
	tenantWide bool     // follows act.<tenant>.* instead of conversations
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
	wideTenant, e := s.actionsScope(r, tenant)
	if e != nil {
		s.metrics.Requests.WithLabelValues(TransportWS, result(e)).Inc()
		writeError(w, e)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.WSOriginPatterns})
	if err != nil {
		return // Accept has answered the client
	}
	if !s.register() {
		_ = c.Close(websocket.StatusGoingAway, CloseShutdown)
		return
	}
	c.SetReadLimit(s.cfg.MaxRequestBytes)
	ss := &session{srv: s, c: c, tenant: tenant}
	if wideTenant != "" {
		ss.tenantWide = true
		ss.followSubjects([]string{bus.ActionTenantWildcard(wideTenant)})
	}
	ss.lastRead.Store(time.Now().UnixNano())
	s.metrics.WSSessions.Inc()
	defer func() {
		s.router.removeSession(ss)
		s.metrics.WSSessions.Dec()
		s.wg.Done()
	}()
	// Reads are not bound to the server's context: cancelling a read makes
	// coder/websocket drop the connection without a close frame, and a
	// close reason (shutdown, slow consumer, idle) must reach the client.
	// Closing the connection is what ends the read.
	ss.ping = time.AfterFunc(s.cfg.WSPingInterval, ss.onPing)
	ss.idle = time.AfterFunc(s.cfg.WSIdleTimeout, ss.onIdle)
	ss.stopShut = context.AfterFunc(s.ctx, func() { ss.close(websocket.StatusGoingAway, CloseShutdown) })
	ss.readLoop(context.Background())
	ss.close(websocket.StatusNormalClosure, "")
	ss.ping.Stop()
	ss.idle.Stop()
	ss.stopShut()
	ss.qmu.Lock()
	ss.dead = true
	ss.qmu.Unlock()
	ss.wg.Wait()
	c.CloseNow()
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
			ss.close(websocket.StatusUnsupportedData, CloseTextOnly)
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
	frames := make([][]byte, len(acks))
	for i, a := range acks {
		frames[i], _ = json.Marshal(ackFrame{Type: FrameAck, Ack: a})
	}
	return ss.enqueue(frames...)
}

// goLocked starts f on a goroutine the session waits for, unless the
// session is ending. ss.qmu must be held.
func (ss *session) goLocked(f func()) bool {
	if ss.dead {
		return false
	}
	ss.wg.Add(1)
	go func() { // waited for by handleWS (ss.wg)
		defer ss.wg.Done()
		f()
	}()
	return true
}

// enqueue queues a frame without blocking. A full queue means the client
// does not read fast enough: the session is closed rather than buffering
// without bound.
func (ss *session) enqueue(frames ...[]byte) bool {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	if ss.closing || ss.dead {
		return false
	}
	// The bound counts replies, not frames: the acks of one batch frame (up
	// to MaxBatch) are one reply, so a client that reads them keeps its
	// session while the server is still writing them out, and one that
	// stops reading is closed at its next request or pushed action.
	if len(ss.queue) >= ss.srv.cfg.WSSendQueue {
		ss.srv.metrics.WSSendQueueDrops.Inc()
		ss.closeLocked(websocket.StatusPolicyViolation, CloseSlowConsumer)
		return false
	}
	ss.queue = append(ss.queue, frames)
	if !ss.flushing {
		ss.flushing = ss.goLocked(ss.flush)
	}
	return true
}

// flush writes queued frames in order and exits when the queue is empty.
func (ss *session) flush() {
	for {
		ss.qmu.Lock()
		if len(ss.queue) == 0 || ss.closing {
			ss.queue = nil // free the backing array of an idle session
			ss.flushing = false
			ss.qmu.Unlock()
			return
		}
		reply := ss.queue[0]
		ss.queue[0] = nil
		ss.queue = ss.queue[1:]
		ss.qmu.Unlock()
		for _, f := range reply {
			// Not derived from the server's context: coder/websocket drops
			// the connection when a write's context ends, even just after
			// the frame went out, and shutdown must still send its close
			// frame.
			ctx, cancel := context.WithTimeout(context.Background(), ss.srv.cfg.WSWriteTimeout)
			err := ss.c.Write(ctx, websocket.MessageText, f)
			cancel()
			if err != nil {
				ss.close(websocket.StatusPolicyViolation, CloseSlowConsumer)
				break
			}
		}
	}
}

// close performs the close handshake with code and reason on its own
// goroutine (it may take seconds with a stuck peer); the first call wins.
// The closed connection ends the handler's read loop.
func (ss *session) close(code websocket.StatusCode, reason string) {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	ss.closeLocked(code, reason)
}

func (ss *session) closeLocked(code websocket.StatusCode, reason string) {
	if ss.closing {
		return
	}
	ss.closing = true
	ss.srv.metrics.WSCloses.WithLabelValues(closeLabel(reason)).Inc()
	if !ss.goLocked(func() { _ = ss.c.Close(code, reason) }) {
		ss.c.CloseNow()
	}
}

// onPing runs on the ping timer: ping, then re-arm (or close).
func (ss *session) onPing() {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	if ss.closing {
		return
	}
	ss.goLocked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ss.srv.cfg.WSWriteTimeout)
		err := ss.c.Ping(ctx)
		cancel()
		if err != nil {
			ss.close(websocket.StatusGoingAway, ClosePingTimeout)
			return
		}
		ss.ping.Reset(ss.srv.cfg.WSPingInterval)
	})
}

// onIdle runs on the idle timer: close a session silent for WSIdleTimeout,
// or re-arm for the remaining time.
func (ss *session) onIdle() {
	since := time.Since(time.Unix(0, ss.lastRead.Load()))
	if since >= ss.srv.cfg.WSIdleTimeout {
		ss.close(websocket.StatusGoingAway, CloseIdle)
		return
	}
	ss.idle.Reset(ss.srv.cfg.WSIdleTimeout - since)
}

// follow subscribes the session to the action subjects of conversations
// it sent into, keeping at most WSMaxConversations (oldest dropped).
func (ss *session) follow(subjects []string) {
	if ss.tenantWide {
		return // already receives every conversation of the tenant
	}
	ss.followSubjects(subjects)
}

func (ss *session) followSubjects(subjects []string) {
	created := false
	defer func() {
		if created {
			// Make sure the server has the interest before the client sees
			// the ack, so no action published after the ack is missed.
			ctx, cancel := context.WithTimeout(context.Background(), ss.srv.cfg.WSWriteTimeout)
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

// Values of the actions query parameter of GET /v1/ws.
const (
	// ActionsConversations (the default) delivers the actions of the
	// conversations the session sent into (the last WSMaxConversations).
	ActionsConversations = "conversations"
	// ActionsTenant delivers the actions of every conversation of the
	// session's tenant: for a platform that multiplexes all its
	// conversations over a few sessions.
	ActionsTenant = "tenant"
)

// actionsScope reads ?actions= (and, in open mode, ?tenant=) and returns
// the tenant whose actions the session follows wholesale, or "".
func (s *Server) actionsScope(r *http.Request, tokenTenant string) (string, *Error) {
	q := r.URL.Query()
	switch q.Get("actions") {
	case "", ActionsConversations:
		return "", nil
	case ActionsTenant:
	default:
		return "", badRequest("actions", "must be conversations or tenant")
	}
	tenant := q.Get("tenant")
	switch {
	case tenant == "" && tokenTenant == "":
		return "", badRequest("tenant", "required with actions=tenant in open mode")
	case tenant == "":
		return tokenTenant, nil
	case tokenTenant != "" && tenant != tokenTenant:
		return "", &Error{Status: http.StatusForbidden, Field: "tenant", Msg: "token may not read this tenant"}
	}
	if err := vigil.ValidateID(tenant); err != nil {
		return "", badRequest("tenant", idProblem(err))
	}
	return tenant, nil
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
			if m.Sub == nil {
				continue
			}
			r.mu.Lock()
			var targets []*session
			// Route by the subscription that delivered the message (a
			// conversation subject or a tenant wildcard): NATS delivers once
			// per matching subscription, so no session gets it twice.
			if rt := r.subs[m.Sub.Subject]; rt != nil {
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

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// Transport names a way into Vigil's ingest front door.
type Transport string

// Transports.
const (
	// TransportHTTP posts to /v1/messages (or /v1/messages/batch).
	TransportHTTP Transport = "http"
	// TransportWS sends frames over a WebSocket session on /v1/ws and
	// receives verdicts on it.
	TransportWS Transport = "ws"
	// TransportNATS sends requests to vigil.ingest.<tenant> and subscribes
	// to the verdicts of its conversations.
	TransportNATS Transport = "nats"
)

// Error kinds counted in [Result.Errors] besides HTTP-like status codes
// ("429", "503", …).
const (
	ErrKindTimeout      = "timeout"
	ErrKindConnection   = "connection"
	ErrKindNoResponders = "no_responders"
	ErrKindProtocol     = "protocol"
	ErrKindClosed       = "closed"
)

// Ack is the acknowledgement of one message, as ingest sends it.
type Ack struct {
	ID        string `json:"id"`
	Sequence  uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// SendError is a request that Vigil refused or that did not complete.
// Status is the HTTP-like status of a refusal (also on WebSocket and NATS),
// 0 otherwise; RetryAfter is the server's Retry-After.
type SendError struct {
	Kind       string
	Status     int
	RetryAfter time.Duration
	Msg        string
	Err        error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("send: ")
	b.WriteString(e.Kind)
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// Retryable reports whether the request may be retried after RetryAfter:
// 429 (too many in flight) and 503 (stream full, shutting down).
func (e *SendError) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable
}

// errorBody is ingest's rejection JSON.
type errorBody struct {
	Error             string `json:"error"`
	Field             string `json:"field"`
	Status            int    `json:"status"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
}

func (b errorBody) sendError(retryAfter time.Duration) *SendError {
	if retryAfter == 0 && b.RetryAfterSeconds > 0 {
		retryAfter = time.Duration(b.RetryAfterSeconds) * time.Second
	}
	msg := b.Error
	if b.Field != "" {
		msg = b.Field + ": " + msg
	}
	return &SendError{Kind: strconv.Itoa(b.Status), Status: b.Status, RetryAfter: retryAfter, Msg: msg}
}

// reply is any answer of ingest: an Ack, a BatchAck or an error body.
type reply struct {
	Ack
	Acks   []Ack  `json:"acks"`
	Error  string `json:"error"`
	Field  string `json:"field"`
	Status int    `json:"status"`
	// RetryAfterSeconds repeats Retry-After for NATS and WebSocket clients.
	RetryAfterSeconds int `json:"retry_after_seconds"`
}

func (r *reply) acks(batch bool) ([]Ack, *SendError) {
	if r.Error != "" || r.Status >= 300 {
		return nil, errorBody{r.Error, r.Field, r.Status, r.RetryAfterSeconds}.sendError(0)
	}
	if batch {
		return r.Acks, nil
	}
	if r.ID == "" {
		return nil, &SendError{Kind: ErrKindProtocol, Msg: "reply has neither an ack nor an error"}
	}
	return []Ack{r.Ack}, nil
}

// client sends requests of one session.
type client interface {
	// send delivers msgs as one request (a batch when len > 1) and returns
	// one ack per message in order, or a *SendError.
	send(ctx context.Context, msgs []*Message) ([]Ack, error)
	// close releases the session and stops its goroutines.
	close() error
}

func encode(msgs []*Message) ([]byte, error) {
	if len(msgs) == 1 {
		return json.Marshal(msgs[0])
	}
	return json.Marshal(msgs)
}

// classify maps a transport error to a *SendError.
func classify(err error) *SendError {
	var se *SendError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &SendError{Kind: ErrKindTimeout, Err: err}
	case errors.Is(err, nats.ErrNoResponders):
		return &SendError{Kind: ErrKindNoResponders, Err: err}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, net.ErrClosed):
		return &SendError{Kind: ErrKindClosed, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &SendError{Kind: ErrKindTimeout, Err: err}
	}
	return &SendError{Kind: ErrKindConnection, Err: err}
}

// httpClient posts to the HTTP API.
type httpClient struct {
	hc    *http.Client
	base  string
	token string
}

func (c *httpClient) send(ctx context.Context, msgs []*Message) ([]Ack, error) {
	body, err := encode(msgs)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	path := "/v1/messages"
	if len(msgs) > 1 {
		path = "/v1/messages/batch"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, classify(err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		_ = json.Unmarshal(raw, &eb) // a proxy may answer with HTML
		eb.Status = resp.StatusCode
		if eb.Error == "" {
			eb.Error = http.StatusText(resp.StatusCode)
		}
		return nil, eb.sendError(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &SendError{Kind: ErrKindProtocol, Msg: "undecodable ack", Err: err}
	}
	acks, se := r.acks(len(msgs) > 1)
	if se != nil {
		return nil, se
	}
	return acks, nil
}

func (c *httpClient) close() error { return nil }

// maxRetryAfterSeconds clamps a parsed Retry-After (one day); Run caps the
// wait further at DefaultMaxRetryAfter.
const maxRetryAfterSeconds = 86400

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		// Clamp before converting: a huge value overflows time.Duration.
		return time.Duration(min(s, maxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfterSeconds*time.Second)
	}
	return 0
}

// wsURL turns the HTTP base URL into the WebSocket session URL.
func wsURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse target: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("target %q: want an http(s):// or ws(s):// URL", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/ws"
	return u.String(), nil
}

// wsFrame is any frame the server sends on /v1/ws.
type wsFrame struct {
	Type string `json:"type"`
	reply
	Verdict *vigil.Verdict `json:"verdict"`
}

// wsClient is one WebSocket session. Its reader goroutine, owned by the
// client and stopped by close, routes ack and error frames to the sender
// (they arrive in request order) and verdict frames to the tracker.
type wsClient struct {
	c       *websocket.Conn
	tracker *verdictTracker
	replies chan wsFrame
	stop    chan struct{} // closed by close
	done    chan struct{} // closed when the reader returns
	err     error         // why the reader stopped; read after done is closed
	once    sync.Once
}

func dialWS(ctx context.Context, target, token string, hc *http.Client, tr *verdictTracker) (*wsClient, error) {
	u, err := wsURL(target)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, errorBody{Error: "websocket handshake refused", Status: resp.StatusCode}.
				sendError(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		}
		return nil, classify(fmt.Errorf("dial %s: %w", u, err))
	}
	c.SetReadLimit(16 << 20)
	w := &wsClient{c: c, tracker: tr, replies: make(chan wsFrame, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go w.readLoop() // stopped by close: closing the conn ends Read
	return w, nil
}

func (w *wsClient) readLoop() {
	defer close(w.done)
	for {
		_, data, err := w.c.Read(context.Background())
		if err != nil {
			w.err = err
			return
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			w.err = fmt.Errorf("undecodable frame: %w", err)
			return
		}
		switch f.Type {
		case "action":
			if f.Verdict != nil && w.tracker != nil {
				w.tracker.verdict(f.Verdict.MessageID, time.Now())
			}
		case "ack", "error":
			if f.Type == "ack" && w.tracker != nil {
				// Here, not in send: a verdict frame may follow the ack
				// before the sender wakes up.
				w.tracker.acked(f.ID, time.Now())
			}
			select {
			case w.replies <- f:
			case <-w.stop:
				return
			}
		}
	}
}

func (w *wsClient) send(ctx context.Context, msgs []*Message) ([]Ack, error) {
	body, err := encode(msgs)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	if err := w.c.Write(ctx, websocket.MessageText, body); err != nil {
		return nil, classify(err)
	}
	acks := make([]Ack, 0, len(msgs))
	for len(acks) < len(msgs) {
		select {
		case f := <-w.replies:
			if f.Type == "error" {
				// One error frame answers the whole request.
				_, se := f.reply.acks(false)
				return nil, se
			}
			acks = append(acks, f.Ack)
		case <-w.done:
			return nil, &SendError{Kind: ErrKindClosed, Err: w.err}
		case <-ctx.Done():
			// The session is now out of step with its acks; the caller
			// closes it.
			return nil, classify(ctx.Err())
		}
	}
	return acks, nil
}

func (w *wsClient) close() error {
	var err error
	w.once.Do(func() {
		close(w.stop)
		err = w.c.Close(websocket.StatusNormalClosure, "")
	})
	<-w.done
	if err != nil && !errors.Is(err, net.ErrClosed) && websocket.CloseStatus(err) == -1 {
		return fmt.Errorf("close websocket: %w", err)
	}
	return nil
}

// natsClient sends NATS requests on a connection shared by every session
// and follows the verdicts of the conversations it sent into.
type natsClient struct {
	nc      *nats.Conn
	subject string
	tracker *verdictTracker
	wait    time.Duration

	mu    sync.Mutex
	subs  map[string]*nats.Subscription // conversation → verdict subscription
	ended []endedConv
}

type endedConv struct {
	conv string
	at   time.Time
}

func newNATSClient(nc *nats.Conn, tenant string, tr *verdictTracker, wait time.Duration) *natsClient {
	return &natsClient{nc: nc, subject: bus.IngestSubject(tenant), tracker: tr, wait: wait, subs: map[string]*nats.Subscription{}}
}

func (c *natsClient) send(ctx context.Context, msgs []*Message) ([]Ack, error) {
	if c.tracker != nil {
		if err := c.follow(ctx, msgs); err != nil {
			return nil, classify(err)
		}
	}
	body, err := encode(msgs)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	m, err := c.nc.RequestWithContext(ctx, c.subject, body)
	if err != nil {
		return nil, classify(err)
	}
	var r reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, &SendError{Kind: ErrKindProtocol, Msg: "undecodable reply", Err: err}
	}
	acks, se := r.acks(len(msgs) > 1)
	if se != nil {
		return nil, se
	}
	if c.tracker != nil {
		now := time.Now()
		for _, a := range acks {
			c.tracker.acked(a.ID, now)
		}
	}
	return acks, nil
}

// follow subscribes to the verdicts of conversations new to this session
// before their first message is sent, and drops subscriptions of
// conversations that ended more than the verdict wait ago.
func (c *natsClient) follow(ctx context.Context, msgs []*Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	n := 0
	for n < len(c.ended) && now.Sub(c.ended[n].at) > c.wait {
		if s := c.subs[c.ended[n].conv]; s != nil {
			_ = s.Unsubscribe()
			delete(c.subs, c.ended[n].conv)
		}
		n++
	}
	c.ended = c.ended[n:]
	added := false
	for _, m := range msgs {
		if _, ok := c.subs[m.ConversationID]; !ok {
			s, err := c.nc.Subscribe(bus.VerdictSubject(m.Tenant, m.ConversationID), c.onVerdict)
			if err != nil {
				return fmt.Errorf("subscribe to verdicts: %w", err)
			}
			c.subs[m.ConversationID] = s
			added = true
		}
		if m.Last {
			c.ended = append(c.ended, endedConv{m.ConversationID, now})
		}
	}
	if added {
		// The server must know the interest before the message exists.
		return c.nc.FlushWithContext(ctx)
	}
	return nil
}

func (c *natsClient) onVerdict(m *nats.Msg) {
	var v struct {
		MessageID string `json:"message_id"`
	}
	if json.Unmarshal(m.Data, &v) == nil && v.MessageID != "" {
		c.tracker.verdict(v.MessageID, time.Now())
	}
}

func (c *natsClient) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conv, s := range c.subs {
		_ = s.Unsubscribe()
		delete(c.subs, conv)
	}
	return nil
}

// WaitReady polls target's /readyz (Vigil's readiness: NATS and ClickHouse
// answer) every 250 ms until it answers 200 or ctx ends, for harnesses that
// start Vigil and the load at the same time. It returns ctx's error, wrapped
// with the last failure, when Vigil did not become ready.
func WaitReady(ctx context.Context, target string, hc *http.Client) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimSuffix(target, "/") + "/readyz"
	var last error
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", u, err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %w)", u, ctx.Err(), last)
		case <-t.C:
		}
	}
}

package ingest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Handler returns the HTTP API, to be mounted at the root of a server (its
// patterns carry the /v1/ prefix):
//
//	POST /v1/messages        one message      → 202 Ack
//	POST /v1/messages/batch  array ≤ MaxBatch → 202 BatchAck
//	GET  /v1/ws              WebSocket session
//
// Errors are JSON {"error": "...", "field": "...", "status": N}; 429 and
// 503 carry Retry-After.
//
// The caller's http.Server may set ReadHeaderTimeout, ReadTimeout and
// WriteTimeout: net/http clears a connection's deadlines when the
// WebSocket handshake hijacks it (TestWSOutlivesServerTimeouts), and a
// session's liveness is enforced by pings and the idle timeout instead.
// Request bodies are bounded by MaxRequestBytes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.handleOne)
	mux.HandleFunc("POST /v1/messages/batch", s.handleBatch)
	mux.HandleFunc("GET /v1/ws", s.handleWS)
	return mux
}

func (s *Server) handleOne(w http.ResponseWriter, r *http.Request) {
	s.serveHTTP(w, r, false)
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	s.serveHTTP(w, r, true)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, batch bool) {
	start := time.Now()
	acks, n, e := s.httpIngest(r, batch)
	s.observe(TransportHTTP, start, n, e)
	if e != nil {
		writeError(w, e)
		return
	}
	if batch {
		writeJSON(w, http.StatusAccepted, BatchAck{Acks: acks})
		return
	}
	writeJSON(w, http.StatusAccepted, acks[0])
}

func (s *Server) httpIngest(r *http.Request, batch bool) ([]Ack, int, *Error) {
	tenant, e := s.authenticate(r.Header.Get("Authorization"))
	if e != nil {
		return nil, 0, e
	}
	body, e := s.readBody(r)
	if e != nil {
		return nil, 0, e
	}
	var ws []*wireMessage
	if batch {
		ws, e = s.decodeBatch(body)
	} else {
		var w *wireMessage
		w, e = s.decodeOne(body)
		ws = []*wireMessage{w}
	}
	if e != nil {
		return nil, 0, e
	}
	acks, e := s.ingest(r.Context(), tenant, ws, batch)
	return acks, len(acks), e
}

// readBody reads at most MaxRequestBytes; a larger body is a 413.
func (s *Server) readBody(r *http.Request) ([]byte, *Error) {
	if r.ContentLength > s.cfg.MaxRequestBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: "request larger than " + strconv.FormatInt(s.cfg.MaxRequestBytes, 10) + " bytes"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxRequestBytes+1))
	if err != nil {
		return nil, badRequest("", "could not read request body")
	}
	if int64(len(body)) > s.cfg.MaxRequestBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: "request larger than " + strconv.FormatInt(s.cfg.MaxRequestBytes, 10) + " bytes"}
	}
	return body, nil
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	}
	writeJSON(w, e.Status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vigilhq/vigil/review/workflow"
)

// maxBodyBytes bounds API request bodies.
const maxBodyBytes = 1 << 20

// errorBody is the JSON of every refused API request:
// {"error": {"code": "not_claimed", "message": "claim alert a-… before closing it"}}.
type errorBody struct {
	Error *workflow.Error `json:"error"`
}

func (s *Service) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/review/alerts", s.api(s.apiQueue))
	mux.HandleFunc("GET /v1/review/alerts/{id}", s.api(s.apiAlert))
	mux.HandleFunc("GET /v1/review/alerts/{id}/context", s.api(s.apiContext))
	mux.HandleFunc("POST /v1/review/alerts/{id}/{op}", s.api(s.apiOp))
	mux.HandleFunc("POST /v1/review/alerts/{id}/detokenize", s.api(s.apiDetokenize))
	mux.HandleFunc("POST /v1/review/bulk/close", s.api(s.apiBulkClose))
	mux.HandleFunc("GET /v1/review/stats", s.api(s.apiStats))
	mux.HandleFunc("GET /v1/review/events", s.apiEvents)
	mux.HandleFunc("/v1/review/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, workflow.Errorf(http.StatusNotFound, workflow.CodeNotFound, "no such endpoint"))
	})
}

type apiFunc func(ctx context.Context, p workflow.Principal, r *http.Request) (any, error)

// api authenticates the bearer token, runs f and writes its JSON result or
// its error.
func (s *Service) api(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.authenticate(r.Context(), bearer(r))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-review"`)
			writeError(w, err)
			return
		}
		v, err := f(r.Context(), p, r)
		if err != nil {
			if !isRefusal(err) {
				s.log.Error("review api", "path", r.Pattern, "err", err)
			}
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	we := toWorkflowError(err)
	writeJSON(w, we.Status, errorBody{Error: we})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return workflow.Errorf(http.StatusBadRequest, workflow.CodeBadRequest, "invalid JSON body: %s", jsonProblem(err))
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "unknown field or malformed body"
}

func (s *Service) apiQueue(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	f, err := workflow.ParseFilter(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return s.Queue(ctx, p, f)
}

func (s *Service) apiAlert(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	return s.Alert(ctx, p, r.PathValue("id"))
}

func (s *Service) apiContext(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	a, err := s.Alert(ctx, p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	msgs, err := s.Conversation(ctx, p, a)
	if err != nil {
		return nil, err
	}
	return map[string]any{"alert_id": a.ID, "messages": msgs}, nil
}

// opRequest is the body of POST /v1/review/alerts/{id}/{op}.
type opRequest struct {
	Disposition workflow.Disposition `json:"disposition,omitempty"`
	Reason      string               `json:"reason,omitempty"`
	Assignee    string               `json:"assignee,omitempty"`
	Text        string               `json:"text,omitempty"`
}

func (s *Service) apiOp(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	kind := workflow.OpKind(r.PathValue("op"))
	if kind == "comments" {
		kind = workflow.OpComment
	}
	if validOp(kind) == "unknown" {
		return nil, workflow.Errorf(http.StatusNotFound, workflow.CodeNotFound, "no such operation")
	}
	var req opRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return nil, err
		}
	}
	return s.Transition(ctx, p, r.PathValue("id"), workflow.Op{
		Kind: kind, Disposition: req.Disposition, Reason: req.Reason, Assignee: req.Assignee, Text: req.Text,
	})
}

// detokenizeRequest is the body of POST /v1/review/alerts/{id}/detokenize.
type detokenizeRequest struct {
	MessageID string `json:"message_id,omitempty"`
	Reason    string `json:"reason"`
}

func (s *Service) apiDetokenize(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	var req detokenizeRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return nil, err
		}
	}
	rev, err := s.Detokenize(ctx, p, r.PathValue("id"), req.MessageID, req.Reason)
	if err != nil {
		return nil, err
	}
	return map[string]any{"values": rev}, nil
}

// bulkCloseRequest is the body of POST /v1/review/bulk/close.
type bulkCloseRequest struct {
	IDs         []string             `json:"ids"`
	Disposition workflow.Disposition `json:"disposition"`
	Reason      string               `json:"reason"`
}

func (s *Service) apiBulkClose(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	var req bulkCloseRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	res, err := s.BulkClose(ctx, p, req.IDs, req.Disposition, req.Reason)
	if err != nil {
		return nil, err
	}
	return map[string]any{"results": res}, nil
}

func (s *Service) apiStats(ctx context.Context, p workflow.Principal, r *http.Request) (any, error) {
	return s.Stats(ctx, p, r.URL.Query().Get("tenant"))
}

// apiEvents streams alert changes as server-sent events ("alert" events
// with a [workflow.Change] as data) until the client goes away or the
// service closes.
func (s *Service) apiEvents(w http.ResponseWriter, r *http.Request) {
	p, err := s.auth.authenticate(r.Context(), bearer(r))
	if err != nil {
		writeError(w, err)
		return
	}
	ch, cancel := s.Subscribe(p)
	defer cancel()
	serveEvents(w, r, ch)
}

// serveEvents writes changes from ch as server-sent events until ch closes
// or the request ends.
func serveEvents(w http.ResponseWriter, r *http.Request, ch <-chan workflow.Change) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, workflow.Errorf(http.StatusInternalServerError, workflow.CodeUnavailable, "streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": connected\n\n")
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			_, _ = io.WriteString(w, ": ping\n\n")
			fl.Flush()
		case c, ok := <-ch:
			if !ok {
				return
			}
			data, _ := json.Marshal(c)
			_, _ = fmt.Fprintf(w, "event: alert\ndata: %s\n\n", data)
			fl.Flush()
		}
	}
}

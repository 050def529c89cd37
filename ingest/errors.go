package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalidConfig is returned by [New] for an invalid [Config].
	ErrInvalidConfig = errors.New("ingest: invalid config")
	// ErrInvalidOption is returned by [New] for an invalid [Option].
	ErrInvalidOption = errors.New("ingest: invalid option")
	// ErrClosed is returned when the server is shutting down.
	ErrClosed = errors.New("ingest: server closed")
)

// Error is a rejected request: the status to answer (HTTP status; also in
// WebSocket and NATS replies), the offending field in JSON-path form
// ("text", "[3].sender.id") and a message. It never contains the value of
// a field, which may be personal data.
type Error struct {
	Status     int
	Field      string
	Msg        string
	RetryAfter time.Duration
	err        error
}

// Error returns "field: message", or the message alone.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return e.Msg
}

// Unwrap returns the underlying cause (a bus error for 429/503), if any.
func (e *Error) Unwrap() error { return e.err }

// at prefixes the field with a batch index.
func (e *Error) at(i int) *Error {
	c := *e
	if c.Field == "" {
		c.Field = fmt.Sprintf("[%d]", i)
	} else {
		c.Field = fmt.Sprintf("[%d].%s", i, c.Field)
	}
	return &c
}

func badRequest(field, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Field: field, Msg: msg}
}

func tooLarge(field, msg string) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Field: field, Msg: msg}
}

// errorBody is the JSON of a rejection.
type errorBody struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Status int    `json:"status"`
	// RetryAfterSeconds repeats Retry-After for WebSocket and NATS clients.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

func (e *Error) body() errorBody {
	return errorBody{Error: e.Msg, Field: e.Field, Status: e.Status, RetryAfterSeconds: retryAfterSeconds(e.RetryAfter)}
}

func retryAfterSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

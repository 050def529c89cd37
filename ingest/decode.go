package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil"
)

// wireMessage is the request JSON of one message. It is deliberately not
// vigil.Message: clients may not set received_at, pii or subjects, and
// sent_at is parsed here so a bad value names its field.
type wireMessage struct {
	ID             string              `json:"id"`
	Tenant         string              `json:"tenant"`
	ConversationID string              `json:"conversation_id"`
	Sender         *vigil.Participant  `json:"sender"`
	Participants   []vigil.Participant `json:"participants"`
	Channel        string              `json:"channel"`
	Text           string              `json:"text"`
	SentAt         string              `json:"sent_at"`
	Attachments    []vigil.Attachment  `json:"attachments"`
	Metadata       map[string]string   `json:"metadata"`
}

const msgNotUTF8 = "not valid UTF-8"

// decodeOne decodes a request body holding one message object.
func (s *Server) decodeOne(body []byte) (*wireMessage, *Error) {
	var w wireMessage
	if err := s.decodeJSON(body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// decodeBatch decodes a request body holding a JSON array of messages.
// The fast path decodes the array in one pass; if that fails, the slow
// path splits the array and decodes element by element so the error names
// the element ("[3].text").
func (s *Server) decodeBatch(body []byte) ([]*wireMessage, *Error) {
	var all []wireMessage
	if err := s.decodeJSON(body, &all); err == nil {
		if e := s.checkBatchLen(len(all)); e != nil {
			return nil, e
		}
		ws := make([]*wireMessage, len(all))
		for i := range all {
			ws[i] = &all[i]
		}
		return ws, nil
	} else if err.Status != http.StatusBadRequest {
		return nil, err
	}
	// Split without the UTF-8 check, so an element's invalid bytes are
	// reported with its index by decodeOne.
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, jsonError(err)
	}
	if e := s.checkBatchLen(len(raws)); e != nil {
		return nil, e
	}
	ws := make([]*wireMessage, len(raws))
	for i, raw := range raws {
		w, err := s.decodeOne(raw)
		if err != nil {
			return nil, err.at(i)
		}
		ws[i] = w
	}
	return ws, nil
}

func (s *Server) checkBatchLen(n int) *Error {
	if n == 0 {
		return badRequest("", "batch is empty")
	}
	if n > s.cfg.MaxBatch {
		return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("batch has more than %d messages", s.cfg.MaxBatch)}
	}
	return nil
}

// decodeAny decodes one message or an array of messages (NATS and
// WebSocket accept both). batch reports which it was.
func (s *Server) decodeAny(body []byte) (ws []*wireMessage, batch bool, err *Error) {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		ws, err = s.decodeBatch(body)
		return ws, true, err
	}
	w, err := s.decodeOne(body)
	if err != nil {
		return nil, false, err
	}
	return []*wireMessage{w}, false, nil
}

func (s *Server) decodeJSON(body []byte, v any) *Error {
	if int64(len(body)) > s.cfg.MaxRequestBytes {
		return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request larger than %d bytes", s.cfg.MaxRequestBytes)}
	}
	if !utf8.Valid(body) {
		// encoding/json would silently replace invalid bytes with U+FFFD;
		// find the field that held them to name it.
		return &Error{Status: http.StatusBadRequest, Field: invalidUTF8Field(body), Msg: msgNotUTF8}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if s.cfg.Strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err == nil {
		return badRequest("", "unexpected data after the JSON value")
	}
	return nil
}

// jsonError turns an encoding/json error into a 400 naming the field.
// The error text never includes the offending value.
func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return badRequest(safeField(typeErr.Field), "wrong JSON type: want "+typeErr.Type.String())
	case errors.As(err, &synErr):
		return badRequest("", fmt.Sprintf("malformed JSON at offset %d", synErr.Offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of input")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f, uerr := strconv.Unquote(name); uerr == nil {
			name = f
		}
		return badRequest(unknownFieldName(name), "unknown field")
	}
	return badRequest("", "malformed JSON")
}

// knownFields are the JSON names of the request schema.
var knownFields = map[string]bool{
	"id": true, "tenant": true, "conversation_id": true, "sender": true, "participants": true,
	"channel": true, "text": true, "sent_at": true, "attachments": true, "metadata": true,
	"display_name": true, "role": true, "name": true, "content_type": true, "size_bytes": true,
}

// safeField keeps the leading segments of a JSON field path that are
// schema names, dropping everything from the first client-chosen key (a
// metadata key) on, so personal data put into a JSON key is never echoed
// back or logged.
func safeField(path string) string {
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		if !knownFields[seg] {
			return strings.Join(segs[:i], ".")
		}
	}
	return path
}

// unknownFieldName returns an unknown key for the error only when it looks
// like a schema-style name (lower-case letters, digits, '_', ≤ 32 bytes),
// never a value a client put into a key.
func unknownFieldName(key string) string {
	if key == "" || len(key) > 32 {
		return ""
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return ""
		}
	}
	return key
}

// invalidUTF8Field names the JSON object key whose string value holds the
// first invalid UTF-8 byte, or "" if it cannot tell.
func invalidUTF8Field(body []byte) string {
	bad := 0
	for bad < len(body) {
		r, size := utf8.DecodeRune(body[bad:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		bad += size
	}
	// Walk back to the last `"key":` before the bad byte.
	prefix := body[:bad]
	for {
		colon := bytes.LastIndexByte(prefix, ':')
		if colon < 0 {
			return ""
		}
		k := bytes.TrimRight(prefix[:colon], " \t\r\n")
		if len(k) >= 2 && k[len(k)-1] == '"' {
			start := bytes.LastIndexByte(k[:len(k)-1], '"')
			if start >= 0 {
				return safeField(string(k[start+1 : len(k)-1]))
			}
		}
		prefix = prefix[:colon]
	}
}

// toMessage validates w and builds the message to tokenize and store. The
// receive time is recorded; the id is derived when absent. Errors name the
// field and never include its value.
func (s *Server) toMessage(w *wireMessage, received time.Time) (*vigil.Message, *Error) {
	if w.ID != "" {
		if err := vigil.ValidateID(w.ID); err != nil {
			return nil, badRequest("id", idProblem(err))
		}
	}
	if err := vigil.ValidateID(w.Tenant); err != nil {
		return nil, badRequest("tenant", idProblem(err))
	}
	if err := vigil.ValidateID(w.ConversationID); err != nil {
		return nil, badRequest("conversation_id", idProblem(err))
	}
	if w.Sender == nil {
		return nil, badRequest("sender", "required")
	}
	if e := s.checkParticipant("sender", w.Sender); e != nil {
		return nil, e
	}
	if len(w.Participants) > s.cfg.MaxParticipants {
		return nil, tooLarge("participants", fmt.Sprintf("more than %d participants", s.cfg.MaxParticipants))
	}
	for i := range w.Participants {
		if e := s.checkParticipant(fmt.Sprintf("participants[%d]", i), &w.Participants[i]); e != nil {
			return nil, e
		}
	}
	if len(w.Channel) > DefaultMaxFieldBytes {
		return nil, tooLarge("channel", fmt.Sprintf("longer than %d bytes", DefaultMaxFieldBytes))
	}
	if len(w.Text) > s.cfg.MaxTextBytes {
		return nil, tooLarge("text", fmt.Sprintf("longer than %d bytes", s.cfg.MaxTextBytes))
	}
	if w.Text == "" && len(w.Attachments) == 0 {
		return nil, badRequest("text", "required (unless the message has attachments)")
	}
	if w.SentAt == "" {
		return nil, badRequest("sent_at", "required (RFC 3339)")
	}
	sentAt, err := time.Parse(time.RFC3339Nano, w.SentAt)
	if err != nil {
		return nil, badRequest("sent_at", "not an RFC 3339 time")
	}
	if len(w.Attachments) > s.cfg.MaxAttachments {
		return nil, tooLarge("attachments", fmt.Sprintf("more than %d attachments", s.cfg.MaxAttachments))
	}
	for i, a := range w.Attachments {
		f := fmt.Sprintf("attachments[%d]", i)
		switch {
		case len(a.Name) > DefaultMaxFieldBytes:
			return nil, tooLarge(f+".name", fmt.Sprintf("longer than %d bytes", DefaultMaxFieldBytes))
		case len(a.ContentType) > DefaultMaxFieldBytes:
			return nil, tooLarge(f+".content_type", fmt.Sprintf("longer than %d bytes", DefaultMaxFieldBytes))
		case a.SizeBytes < 0:
			return nil, badRequest(f+".size_bytes", "negative")
		}
	}
	if len(w.Metadata) > s.cfg.MaxMetadataEntries {
		return nil, tooLarge("metadata", fmt.Sprintf("more than %d entries", s.cfg.MaxMetadataEntries))
	}
	for k, v := range w.Metadata {
		switch {
		case k == "" || len(k) > DefaultMaxMetadataKeyBytes:
			return nil, badRequest("metadata", fmt.Sprintf("keys must be 1..%d bytes", DefaultMaxMetadataKeyBytes))
		case len(v) > DefaultMaxMetadataValueBytes:
			return nil, tooLarge("metadata", fmt.Sprintf("values must be at most %d bytes", DefaultMaxMetadataValueBytes))
		}
	}
	id := w.ID
	if id == "" {
		// Derived from the raw text before tokenization, so a retried
		// request gets the same id and deduplicates.
		id = vigil.DeriveMessageID(w.Tenant, w.ConversationID, w.Sender.ID, sentAt, w.Text)
	}
	return &vigil.Message{
		ID:             id,
		Tenant:         w.Tenant,
		ConversationID: w.ConversationID,
		Sender:         *w.Sender,
		Participants:   w.Participants,
		Channel:        w.Channel,
		Text:           w.Text,
		SentAt:         sentAt.UTC(),
		ReceivedAt:     received.UTC(),
		Attachments:    w.Attachments,
		Metadata:       w.Metadata,
	}, nil
}

func (s *Server) checkParticipant(field string, p *vigil.Participant) *Error {
	if err := vigil.ValidateID(p.ID); err != nil {
		return badRequest(field+".id", idProblem(err))
	}
	if len(p.DisplayName) > DefaultMaxFieldBytes {
		return tooLarge(field+".display_name", fmt.Sprintf("longer than %d bytes", DefaultMaxFieldBytes))
	}
	if len(p.Role) > DefaultMaxFieldBytes {
		return tooLarge(field+".role", fmt.Sprintf("longer than %d bytes", DefaultMaxFieldBytes))
	}
	return nil
}

// idProblem describes a ValidateID failure without the id.
func idProblem(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, vigil.ErrInvalidID.Error()+": "); ok {
		return after
	}
	return "invalid"
}

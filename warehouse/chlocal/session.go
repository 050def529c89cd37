package chlocal

import (
	"fmt"
	"slices"
	"strings"
)

// setting is one ClickHouse setting from a request URL.
type setting struct {
	Name, Value string
}

// session tracks chDB's session-wide state (settings, current database) so
// that each request runs with the engine defaults plus its own settings. It is
// guarded by the engine lock. Restoring is lazy: the next request's apply
// resets what the previous one changed, which is equivalent because nothing
// runs in between.
type session struct {
	baseline map[string]string // settings chDB itself changed at start-up
	applied  map[string]string // settings currently SET by a request
	db       string            // current database; "" means unknown
	dirty    bool              // a client SET/USE ran: re-read the state
}

func (s *session) init(e *Engine) error {
	changed, err := e.changedSettings()
	if err != nil {
		return fmt.Errorf("read engine settings: %w", err)
	}
	s.baseline = changed
	s.applied = map[string]string{}
	s.db = ""
	return nil
}

func (e *Engine) changedSettings() (map[string]string, error) {
	r, err := e.queryLocked("SELECT name, value FROM system.settings WHERE changed", "TSVRaw")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(r.Data), "\n"), "\n") {
		if name, value, ok := strings.Cut(line, "\t"); ok {
			m[name] = value
		}
	}
	return m, nil
}

// apply makes the session run with the defaults plus settings, in database db
// ("" means default). It returns an [*Exception] for an unknown setting or
// database.
func (s *session) apply(e *Engine, db string, settings []setting) error {
	if s.dirty {
		changed, err := e.changedSettings()
		if err != nil {
			return err
		}
		for name, v := range changed {
			if b, ok := s.baseline[name]; !ok || b != v {
				s.applied[name] = v
			}
		}
		s.db = ""
		s.dirty = false
	}
	want := make(map[string]string, len(settings))
	for _, st := range settings {
		want[st.Name] = st.Value
	}
	var parts []string
	for name := range s.applied {
		if _, ok := want[name]; ok {
			continue
		}
		if b, ok := s.baseline[name]; ok {
			parts = append(parts, name+" = "+quoteString(b))
		} else {
			parts = append(parts, name+" = DEFAULT")
		}
	}
	for name, v := range want {
		if cur, ok := s.applied[name]; !ok || cur != v {
			parts = append(parts, name+" = "+quoteString(v))
		}
	}
	if len(parts) > 0 {
		slices.Sort(parts) // deterministic statements, easier to debug
		if _, err := e.queryLocked("SET "+strings.Join(parts, ", "), "TSV"); err != nil {
			// Part of the list may have been applied: re-read next time.
			s.dirty = true
			return err
		}
		s.applied = want
	}
	if db == "" {
		db = "default"
	}
	if s.db != db {
		s.db = ""
		if _, err := e.queryLocked("USE "+quoteIdent(db), "TSV"); err != nil {
			return err
		}
		s.db = db
	}
	return nil
}

// quoteString renders v as a ClickHouse string literal.
func quoteString(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent renders name as a back-quoted ClickHouse identifier.
func quoteIdent(name string) string {
	r := strings.NewReplacer("\\", "\\\\", "`", "\\`")
	return "`" + r.Replace(name) + "`"
}

package console

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

// view is the data of every page.
type view struct {
	Title     string
	Principal *workflow.Principal
	CSRF      string
	Nav       string
	Flash     string
	Error     *workflow.Error
	Data      any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, v view) {
	if s != nil {
		p := s.principal()
		v.Principal = &p
		v.CSRF = c.csrfToken(*s)
	}
	if v.Flash == "" {
		v.Flash = flashMessage(r.URL.Query().Get("done"))
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var we *workflow.Error
	if !errors.As(err, &we) {
		c.log.Error("console", "path", r.URL.Path, "err", err)
		we = workflow.Errorf(http.StatusServiceUnavailable, workflow.CodeUnavailable, "the review service is temporarily unavailable")
	}
	c.render(w, r, we.Status, "error", s, view{Title: "Error", Error: we})
}

// flashMessage maps the ?done= marker of a redirect after a post to a
// fixed message (never echoing the query).
func flashMessage(done string) string {
	switch done {
	case "claim":
		return "Alert claimed."
	case "release":
		return "Alert released."
	case "close":
		return "Alert closed."
	case "reopen":
		return "Alert reopened."
	case "comment":
		return "Comment added."
	case "assign":
		return "Alert assigned."
	case "bulk":
		return "Bulk close done."
	}
	return ""
}

type loginData struct {
	Next string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", nil, view{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		c.renderError(w, r, nil, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "cross-site sign-in refused"))
		return
	}
	p, err := c.b.Authenticate(r.Context(), r.PostFormValue("token"))
	if err != nil {
		c.render(w, r, http.StatusUnauthorized, "login", nil, view{Title: "Sign in",
			Error: workflow.Errorf(http.StatusUnauthorized, workflow.CodeUnauthorized, "That token is not valid."),
			Data:  loginData{Next: next}})
		return
	}
	c.setSession(w, p)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ session) {
	c.clearSession(w)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

type queueData struct {
	Page     *workflow.Page
	Filter   workflow.Filter
	Query    url.Values
	Rules    []string
	Now      time.Time
	CanBulk  bool
	AllSeen  bool
	PrevURL  string
	NextURL  string
	Results  []workflow.BulkResult
	MinAge   string
	Severity []vigil.Severity
	States   []workflow.State
	Disps    []workflow.Disposition
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request, s session) {
	c.renderQueue(w, r, s, nil)
}

func (c *Console) renderQueue(w http.ResponseWriter, r *http.Request, s session, results []workflow.BulkResult) {
	q := r.URL.Query()
	f, err := workflow.ParseFilter(q)
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	p := s.principal()
	pg, err := c.b.Queue(r.Context(), p, f)
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	d := queueData{
		Page: pg, Filter: f, Query: q, Rules: sortedKeys(pg.ByRule), Now: c.opts.Now(),
		CanBulk:  p.Role == workflow.RolePrivileged || p.Role == workflow.RoleAdmin,
		AllSeen:  p.Tenant == workflow.AllTenants,
		Results:  results,
		MinAge:   q.Get("min_age"),
		Severity: []vigil.Severity{vigil.SeverityCritical, vigil.SeverityHigh, vigil.SeverityMedium, vigil.SeverityLow, vigil.SeverityInfo},
		States:   []workflow.State{workflow.StateActive, workflow.StateOpen, workflow.StateClaimed, workflow.StateClosed, workflow.StateAll},
		Disps:    workflow.Dispositions,
	}
	if pg.Page > 1 {
		d.PrevURL = pageURL(q, pg.Page-1)
	}
	if pg.Page < pg.Pages() {
		d.NextURL = pageURL(q, pg.Page+1)
	}
	c.render(w, r, http.StatusOK, "queue", &s, view{Title: "Queue", Nav: "queue", Data: d})
}

func pageURL(q url.Values, page int) string {
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	v.Set("page", fmt.Sprint(page))
	return "/console/queue?" + v.Encode()
}

func (c *Console) bulkClose(w http.ResponseWriter, r *http.Request, s session) {
	res, err := c.b.BulkClose(r.Context(), s.principal(), r.PostForm["id"], workflow.Disposition(r.PostFormValue("disposition")), r.PostFormValue("reason"))
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	c.renderQueue(w, r, s, res)
}

type alertData struct {
	Alert     *workflow.Alert
	Messages  []messageView
	Missing   bool
	Now       time.Time
	Disps     []workflow.Disposition
	CanDetok  bool
	CanAssign bool
	Mine      bool
	Reveals   []workflow.Reveal
	RevealFor string
	Form      formState
}

// formState carries what the reviewer typed back into a refused form.
type formState struct {
	Op          string
	Reason      string
	Disposition string
	Text        string
}

type messageView struct {
	Msg      vigil.Message
	Flagged  bool
	Sender   []segment
	Segments []segment
}

func (c *Console) alertPage(w http.ResponseWriter, r *http.Request, s session) {
	c.renderAlert(w, r, s, http.StatusOK, nil, "", nil, formState{})
}

func (c *Console) renderAlert(w http.ResponseWriter, r *http.Request, s session, status int, reveals []workflow.Reveal, revealFor string, formErr *workflow.Error, form formState) {
	p := s.principal()
	a, err := c.b.Alert(r.Context(), p, r.PathValue("id"))
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	msgs, err := c.b.Conversation(r.Context(), p, a)
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	d := alertData{
		Alert: a, Now: c.opts.Now(), Disps: workflow.Dispositions,
		CanDetok: p.CanDetokenize(), CanAssign: p.Role == workflow.RoleAdmin,
		Mine:    a.State == workflow.StateClaimed && a.Assignee == p.Name,
		Reveals: reveals, RevealFor: revealFor, Form: form,
	}
	flagged := map[string]bool{}
	for _, id := range a.MessageIDs {
		flagged[id] = true
	}
	for _, m := range msgs {
		var spans []vigil.Span
		if m.ID == a.MessageID {
			spans = a.Spans
		}
		d.Messages = append(d.Messages, messageView{Msg: m, Flagged: flagged[m.ID],
			Sender: segments(cmp.Or(m.Sender.DisplayName, m.Sender.ID), nil), Segments: segments(m.Text, spans)})
	}
	d.Missing = len(msgs) == 0
	c.render(w, r, status, "alert", &s, view{Title: "Alert " + a.ID, Nav: "queue", Error: formErr, Data: d})
}

func (c *Console) transition(w http.ResponseWriter, r *http.Request, s session) {
	op := workflow.Op{
		Kind:        workflow.OpKind(r.PathValue("op")),
		Disposition: workflow.Disposition(r.PostFormValue("disposition")),
		Reason:      r.PostFormValue("reason"),
		Assignee:    r.PostFormValue("assignee"),
		Text:        r.PostFormValue("text"),
	}
	id := r.PathValue("id")
	if _, err := c.b.Transition(r.Context(), s.principal(), id, op); err != nil {
		var we *workflow.Error
		if errors.As(err, &we) && we.Status != http.StatusNotFound {
			c.renderAlert(w, r, s, we.Status, nil, "", we, formState{Op: string(op.Kind), Reason: op.Reason, Disposition: string(op.Disposition), Text: op.Text})
			return
		}
		c.renderError(w, r, &s, err)
		return
	}
	http.Redirect(w, r, "/console/alerts/"+url.PathEscape(id)+"?done="+url.QueryEscape(string(op.Kind)), http.StatusSeeOther)
}

func (c *Console) detokenize(w http.ResponseWriter, r *http.Request, s session) {
	mid, reason := r.PostFormValue("message_id"), r.PostFormValue("reason")
	rev, err := c.b.Detokenize(r.Context(), s.principal(), r.PathValue("id"), mid, reason)
	if err != nil {
		var we *workflow.Error
		if errors.As(err, &we) && we.Status != http.StatusNotFound {
			c.renderAlert(w, r, s, we.Status, nil, "", we, formState{Op: "detokenize", Reason: reason})
			return
		}
		c.renderError(w, r, &s, err)
		return
	}
	if mid == "" {
		mid = "flagged"
	}
	c.renderAlert(w, r, s, http.StatusOK, rev, mid, nil, formState{})
}

type dashData struct {
	Stats     *workflow.Stats
	Now       time.Time
	OldestAge string
	Bars      []bar
	Chart     chart
}

func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request, s session) {
	st, err := c.b.Stats(r.Context(), s.principal(), r.URL.Query().Get("tenant"))
	if err != nil {
		c.renderError(w, r, &s, err)
		return
	}
	now := c.opts.Now()
	d := dashData{Stats: st, Now: now, Bars: severityBars(st), Chart: buildChart(st)}
	if !st.OldestOpen.IsZero() {
		d.OldestAge = age(now, st.OldestOpen)
	}
	c.render(w, r, http.StatusOK, "dashboard", &s, view{Title: "Dashboard", Nav: "dashboard", Data: d})
}

// events streams alert changes to the console's script, which refreshes
// the live parts of the page.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := c.b.Subscribe(s.principal())
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "retry: 3000\n: connected\n\n")
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			_, _ = io.WriteString(w, ": ping\n\n")
			fl.Flush()
		case ch, ok := <-ch:
			if !ok {
				return
			}
			data, _ := json.Marshal(ch)
			_, _ = fmt.Fprintf(w, "event: alert\ndata: %s\n\n", data)
			fl.Flush()
		}
	}
}

// Package console is the reviewer web console of Vigil, served by the same
// binary under /console/: server-rendered HTML (html/template, every value
// escaped) with its CSS and a small script embedded, no CDN at run time.
// Screens: login, queue (filters, counts, paging, bulk close), alert (the
// conversation around the flagged message with tokens as typed chips and
// matched spans highlighted, claim, comments, disposition, reopen,
// detokenize with a reason), and a dashboard. New alerts appear without a
// reload through server-sent events.
//
// The console talks to the review service through [Backend]; package
// review implements it and mounts the console. Sessions are signed,
// HttpOnly, SameSite=Strict cookies set after a reviewer presents a token
// on the login form; every state-changing form carries a CSRF token bound
// to the session and cross-origin posts are refused.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

// Backend is what the console needs from the review service.
type Backend interface {
	Authenticate(ctx context.Context, token string) (workflow.Principal, error)
	Queue(ctx context.Context, p workflow.Principal, f workflow.Filter) (*workflow.Page, error)
	Alert(ctx context.Context, p workflow.Principal, id string) (*workflow.Alert, error)
	Conversation(ctx context.Context, p workflow.Principal, a *workflow.Alert) ([]vigil.Message, error)
	Transition(ctx context.Context, p workflow.Principal, id string, op workflow.Op) (*workflow.Alert, error)
	BulkClose(ctx context.Context, p workflow.Principal, ids []string, d workflow.Disposition, reason string) ([]workflow.BulkResult, error)
	Detokenize(ctx context.Context, p workflow.Principal, alertID, messageID, reason string) ([]workflow.Reveal, error)
	Stats(ctx context.Context, p workflow.Principal, tenant string) (*workflow.Stats, error)
	Subscribe(p workflow.Principal) (<-chan workflow.Change, func())
}

// Options configures the console.
type Options struct {
	// SessionKey signs session cookies and CSRF tokens (at least 32 bytes).
	SessionKey []byte
	// SessionTTL is the lifetime of a session.
	SessionTTL time.Duration
	// SecureCookies sets the Secure cookie attribute (TLS deployments).
	SecureCookies bool
	Logger        *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrInvalidOptions is returned by [New] for unusable options.
var ErrInvalidOptions = errors.New("console: invalid options")

//go:embed templates/*.html static/*
var assets embed.FS

// Console serves the reviewer console.
type Console struct {
	b      Backend
	opts   Options
	log    *slog.Logger
	pages  map[string]*template.Template
	mux    *http.ServeMux
	static http.Handler
}

// New returns the console handler; mount it so that it sees paths
// starting with /console/.
func New(b Backend, opts Options) (*Console, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidOptions)
	}
	if len(opts.SessionKey) < 32 {
		return nil, fmt.Errorf("%w: session key must be at least 32 bytes", ErrInvalidOptions)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{b: b, opts: opts, log: opts.Logger.With("component", "console"), pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "queue", "alert", "dashboard", "error"} {
		t, err := template.New("layout.html").Funcs(c.funcs()).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("static assets: %w", err)
	}
	c.static = http.StripPrefix("/console/static/", http.FileServerFS(static))
	c.mux = http.NewServeMux()
	c.routes()
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET /console/static/", c.static)
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.login)
	m.HandleFunc("POST /console/logout", c.authed(c.logout))
	m.HandleFunc("GET /console/{$}", c.authed(c.queuePage))
	m.HandleFunc("GET /console/queue", c.authed(c.queuePage))
	m.HandleFunc("POST /console/bulk-close", c.authed(c.bulkClose))
	m.HandleFunc("GET /console/alerts/{id}", c.authed(c.alertPage))
	m.HandleFunc("POST /console/alerts/{id}/detokenize", c.authed(c.detokenize))
	m.HandleFunc("POST /console/alerts/{id}/{op}", c.authed(c.transition))
	m.HandleFunc("GET /console/dashboard", c.authed(c.dashboardPage))
	m.HandleFunc("GET /console/events", c.authed(c.events))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, workflow.Errorf(http.StatusNotFound, workflow.CodeNotFound, "page not found"))
	})
}

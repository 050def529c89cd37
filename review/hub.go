package review

import (
	"sync"

	"github.com/vigilhq/vigil/review/workflow"
)

// subscriberBuffer is the backlog of changes a live subscriber may fall
// behind by before changes are dropped for it (the console then refreshes
// from the index, so nothing is lost from view).
const subscriberBuffer = 64

// hub fans alert changes out to live subscribers (SSE streams).
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	p  workflow.Principal
	ch chan workflow.Change
}

func newHub() *hub { return &hub{subs: make(map[*subscriber]struct{})} }

func (h *hub) subscribe(p workflow.Principal) (<-chan workflow.Change, func()) {
	sub := &subscriber{p: p, ch: make(chan workflow.Change, subscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(sub.ch)
		return sub.ch, func() {}
	}
	h.subs[sub] = struct{}{}
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if _, ok := h.subs[sub]; ok {
				delete(h.subs, sub)
				close(sub.ch)
			}
		})
	}
}

func (h *hub) publish(c workflow.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if !sub.p.Sees(c.Tenant) {
			continue
		}
		select {
		case sub.ch <- c:
		default:
		}
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		close(sub.ch)
	}
	clear(h.subs)
}

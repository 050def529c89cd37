package ingest

import (
	"fmt"
	"time"
)

// Defaults for [Config]. Every limit is documented here once; --help texts
// quote these constants.
const (
	// DefaultMaxTextBytes bounds a message's text (64 KiB).
	DefaultMaxTextBytes = 64 << 10
	// DefaultMaxRequestBytes bounds a whole request body, HTTP, WebSocket
	// frame or NATS request (1 MiB).
	DefaultMaxRequestBytes = 1 << 20
	// DefaultMaxBatch bounds the messages of one batch request.
	DefaultMaxBatch = 1000
	// DefaultMaxParticipants bounds a message's participants.
	DefaultMaxParticipants = 256
	// DefaultMaxAttachments bounds a message's attachment metadata entries.
	DefaultMaxAttachments = 32
	// DefaultMaxMetadataEntries bounds a message's metadata map.
	DefaultMaxMetadataEntries = 16
	// DefaultMaxMetadataKeyBytes bounds one metadata key.
	DefaultMaxMetadataKeyBytes = 64
	// DefaultMaxMetadataValueBytes bounds one metadata value.
	DefaultMaxMetadataValueBytes = 256
	// DefaultMaxFieldBytes bounds display names, roles, channel and
	// attachment names and content types.
	DefaultMaxFieldBytes = 256
	// DefaultMaxInFlight bounds messages admitted but not yet acked, over
	// all transports; above it requests get 429.
	DefaultMaxInFlight = 10000
	// DefaultAckTimeout bounds tokenizing and waiting for the PubAck of a
	// request; when it expires the client gets 503.
	DefaultAckTimeout = 5 * time.Second
	// DefaultRetryAfter is the Retry-After sent with 429 and 503.
	DefaultRetryAfter = time.Second
	// DefaultWSPingInterval is how often a WebSocket session is pinged.
	DefaultWSPingInterval = 20 * time.Second
	// DefaultWSIdleTimeout closes a session from which no message arrived
	// for this long (pongs do not count).
	DefaultWSIdleTimeout = 10 * time.Minute
	// DefaultWSWriteTimeout bounds one frame write or ping round trip.
	DefaultWSWriteTimeout = 10 * time.Second
	// DefaultWSSendQueue bounds replies (a request's acks, an action) queued for one
	// session; a client that lets it fill is disconnected.
	DefaultWSSendQueue = 64
	// DefaultWSMaxConversations bounds the conversations whose actions one
	// session follows; beyond it the oldest is dropped.
	DefaultWSMaxConversations = 64
	// DefaultNATSQueue is the queue group of the NATS request API.
	DefaultNATSQueue = "vigil-ingest"
	// DefaultNATSWorkers is the number of NATS requests served at once.
	DefaultNATSWorkers = 32
)

// Config configures the ingest [Server]. Zero fields take their Default*
// constant.
type Config struct {
	// Tokens maps bearer tokens to the one tenant each may write. The
	// caller loads them from a file or the environment; they are never
	// logged.
	Tokens map[string]string
	// Insecure allows running without Tokens: every request may write any
	// tenant. Only for `vigil dev`; the caller logs a loud warning.
	Insecure bool
	// Strict rejects unknown JSON fields (400 naming the field).
	Strict bool

	// MaxTextBytes bounds text. Default [DefaultMaxTextBytes].
	MaxTextBytes int
	// MaxRequestBytes bounds a request body. Default [DefaultMaxRequestBytes].
	MaxRequestBytes int64
	// MaxBatch bounds a batch. Default [DefaultMaxBatch].
	MaxBatch int
	// MaxParticipants bounds participants. Default [DefaultMaxParticipants].
	MaxParticipants int
	// MaxAttachments bounds attachments. Default [DefaultMaxAttachments].
	MaxAttachments int
	// MaxMetadataEntries bounds metadata. Default [DefaultMaxMetadataEntries].
	MaxMetadataEntries int
	// MaxInFlight bounds unacked messages. Default [DefaultMaxInFlight].
	MaxInFlight int
	// AckTimeout bounds one request's tokenize+publish. Default [DefaultAckTimeout].
	AckTimeout time.Duration
	// RetryAfter is sent with 429/503. Default [DefaultRetryAfter].
	RetryAfter time.Duration

	// WSPingInterval. Default [DefaultWSPingInterval].
	WSPingInterval time.Duration
	// WSIdleTimeout. Default [DefaultWSIdleTimeout].
	WSIdleTimeout time.Duration
	// WSWriteTimeout. Default [DefaultWSWriteTimeout].
	WSWriteTimeout time.Duration
	// WSSendQueue. Default [DefaultWSSendQueue].
	WSSendQueue int
	// WSMaxConversations. Default [DefaultWSMaxConversations].
	WSMaxConversations int
	// WSOriginPatterns are the cross-origin hosts allowed to open a
	// WebSocket (coder/websocket AcceptOptions.OriginPatterns). Clients
	// that send no Origin header (servers) are always allowed.
	WSOriginPatterns []string

	// NATSQueue is the queue group of [Server.ServeNATS]. Default [DefaultNATSQueue].
	NATSQueue string
	// NATSWorkers bounds concurrent NATS requests. Default [DefaultNATSWorkers].
	NATSWorkers int
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxTextBytes, DefaultMaxTextBytes)
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	def(&c.MaxBatch, DefaultMaxBatch)
	def(&c.MaxParticipants, DefaultMaxParticipants)
	def(&c.MaxAttachments, DefaultMaxAttachments)
	def(&c.MaxMetadataEntries, DefaultMaxMetadataEntries)
	def(&c.MaxInFlight, DefaultMaxInFlight)
	defDur(&c.AckTimeout, DefaultAckTimeout)
	defDur(&c.RetryAfter, DefaultRetryAfter)
	defDur(&c.WSPingInterval, DefaultWSPingInterval)
	defDur(&c.WSIdleTimeout, DefaultWSIdleTimeout)
	defDur(&c.WSWriteTimeout, DefaultWSWriteTimeout)
	def(&c.WSSendQueue, DefaultWSSendQueue)
	def(&c.WSMaxConversations, DefaultWSMaxConversations)
	def(&c.NATSWorkers, DefaultNATSWorkers)
	if c.NATSQueue == "" {
		c.NATSQueue = DefaultNATSQueue
	}
	if len(c.Tokens) == 0 && !c.Insecure {
		return c, fmt.Errorf("%w: no bearer tokens configured (set Tokens, or Insecure for development)", ErrInvalidConfig)
	}
	for tok, tenant := range c.Tokens {
		if tok == "" || tenant == "" {
			return c, fmt.Errorf("%w: empty token or tenant in Tokens", ErrInvalidConfig)
		}
	}
	for _, v := range []int{c.MaxTextBytes, c.MaxBatch, c.MaxParticipants, c.MaxAttachments, c.MaxMetadataEntries,
		c.MaxInFlight, c.WSSendQueue, c.WSMaxConversations, c.NATSWorkers} {
		if v < 0 {
			return c, fmt.Errorf("%w: limits must not be negative", ErrInvalidConfig)
		}
	}
	if c.MaxRequestBytes < 0 || c.AckTimeout < 0 || c.RetryAfter < 0 || c.WSPingInterval < 0 || c.WSIdleTimeout < 0 || c.WSWriteTimeout < 0 {
		return c, fmt.Errorf("%w: limits must not be negative", ErrInvalidConfig)
	}
	if int64(c.MaxTextBytes) > c.MaxRequestBytes {
		return c, fmt.Errorf("%w: max text bytes exceeds max request bytes", ErrInvalidConfig)
	}
	return c, nil
}

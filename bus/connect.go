package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Reconnect defaults of [Connect].
const (
	// DefaultReconnectWait is the pause between reconnect attempts (plus
	// jitter), so a cluster restart is not hammered by every replica.
	DefaultReconnectWait = 2 * time.Second
	// DefaultReconnectBufSize buffers publishes while reconnecting.
	DefaultReconnectBufSize = 8 << 20
	// DefaultConnectTimeout bounds the initial dial when ctx has no deadline.
	DefaultConnectTimeout = 10 * time.Second
)

// ConnectOptions are the credentials and identity of a connection to an
// external NATS cluster. Set at most one of CredsFile, NKeyFile,
// User/Password and Token.
type ConnectOptions struct {
	// Name is the connection name shown in server monitoring.
	Name string
	// CredsFile is a JWT + NKey credentials file.
	CredsFile string
	// NKeyFile is an NKey seed file.
	NKeyFile string
	// TLSCA is a PEM file of root CAs to verify the servers.
	TLSCA string
	// TLSCert and TLSKey are the client certificate and key (mutual TLS).
	TLSCert, TLSKey string
	// User and Password authenticate with a user name.
	User, Password string
	// Token authenticates with a token.
	Token string
	// Logger receives connection events (disconnect, reconnect, async
	// errors); nil uses slog.Default().
	Logger *slog.Logger
}

// Connect dials an external NATS server or cluster (url may list several
// servers separated by commas) with production reconnect settings: retry
// forever with jitter, buffer publishes while reconnecting, and log
// disconnects, reconnects and asynchronous errors. The initial dial is
// bounded by ctx's deadline or [DefaultConnectTimeout]. Secrets are never
// logged.
func Connect(ctx context.Context, url string, o ConnectOptions) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "nats")
	timeout := DefaultConnectTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.ReconnectBufSize(DefaultReconnectBufSize),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedServerId())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("nats async error", "err", err)
		}),
	}
	n := 0
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
		n++
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("connect nats: nkey file: %w", err)
		}
		opts = append(opts, opt)
		n++
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
		n++
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
		n++
	}
	if n > 1 {
		return nil, fmt.Errorf("%w: set only one of creds file, nkey file, user or token", ErrInvalidOption)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, fmt.Errorf("%w: tls cert and key go together", ErrInvalidOption)
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	return nc, nil
}

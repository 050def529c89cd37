// Package chlocal is Vigil's embedded ClickHouse: it loads chDB (the
// ClickHouse engine as a library, libchdb.so) into the process and serves
// ClickHouse's HTTP interface on a local port, so that the warehouse sink,
// report queries, curl and BI tools talk to it exactly as they talk to a
// ClickHouse server (clickhouse-go/v2 with Protocol: clickhouse.HTTP).
//
// In the data flow ingest → pii → bus → evaluator → warehouse it sits at the
// very end: `vigil dev`, tests and CI run the warehouse against it; production
// points the warehouse at a real ClickHouse server instead
// (--clickhouse clickhouse://…) and never loads this package's library.
//
// The library is loaded lazily with purego when [Open] is called, so a binary
// without libchdb.so still starts; [Open] then returns an error wrapping
// [ErrLibraryNotFound] or [ErrLibraryInvalid] that says to run `make deps`.
//
// chDB runs one engine per process and one statement at a time on it, so an
// [Engine] serializes every chDB call behind one lock. Session state (settings,
// current database) is process-wide inside chDB; each request runs with the
// engine defaults plus its own URL settings, applied under that lock.
package chlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxRequestBytes bounds an HTTP request body (after decompression)
// when [Config.MaxRequestBytes] is zero.
const DefaultMaxRequestBytes int64 = 64 << 20

// defaultTimeout bounds blocking engine calls whose ctx has no deadline.
const defaultTimeout = 5 * time.Minute

// ErrEngineOpen is returned by [Open] when another [Engine] is open in this
// process: chDB supports one engine per process. Close the first one.
var ErrEngineOpen = errors.New("an embedded ClickHouse engine is already open in this process")

// ErrDataDirLocked is returned by [Open] when another process (another
// `vigil dev`, or a clickhouse-local) runs an engine on the same data
// directory: ClickHouse holds a lock on its "status" file.
var ErrDataDirLocked = errors.New("embedded ClickHouse data directory is in use by another process")

// ErrClosed is returned by calls on an [Engine] after [Engine.Close].
var ErrClosed = errors.New("embedded ClickHouse engine is closed")

// Config configures [Open].
type Config struct {
	// LibPath is the path of libchdb.so. Empty means [DefaultLibPath].
	LibPath string
	// DataDir holds the engine's databases and tables; it is created if
	// missing. Empty means an in-memory engine whose data is lost on Close.
	DataDir string
	// MaxRequestBytes bounds an HTTP request body, on the wire and after
	// decompression. Zero means [DefaultMaxRequestBytes].
	MaxRequestBytes int64
	// Logger receives lifecycle logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer registers the engine's [Metrics]. Nil registers nothing.
	Registerer prometheus.Registerer
}

// Engine is an open chDB engine. Its methods are safe for concurrent use; the
// engine runs one statement at a time.
type Engine struct {
	lib     *lib
	log     *slog.Logger
	metrics *Metrics
	maxBody int64
	dataDir string

	// sem is the one lock around chDB calls: a channel so that waiting for it
	// honours ctx.
	sem    chan struct{}
	connp  *uintptr // chdb_connection*, owned; nil after Close
	conn   uintptr  // *connp
	sess   session  // guarded by sem
	closed bool     // guarded by sem

	libVersion  string // chdb_version(), e.g. 26.7.3
	version     string // SQL version(), e.g. 26.7.2.1
	revision    uint64
	timezone    string
	displayName string
}

// processEngine enforces one open Engine per process.
var (
	processMu     sync.Mutex
	processEngine *Engine
)

// Open loads libchdb.so (see [Config.LibPath]) and starts the engine on
// cfg.DataDir. It returns an error wrapping [ErrLibraryNotFound] or
// [ErrLibraryInvalid] when the library is missing or unusable (the message
// says to run `make deps`), [ErrEngineOpen] when this process already has an
// open Engine, and [ErrDataDirLocked] when another process runs an engine on
// cfg.DataDir.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String(logKeyComponent, "chlocal"))
	path := cfg.LibPath
	if path == "" {
		path = DefaultLibPath()
	}
	maxBody := cfg.MaxRequestBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxRequestBytes
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := loadLib(path)
	if err != nil {
		return nil, err
	}

	processMu.Lock()
	defer processMu.Unlock()
	if processEngine != nil {
		return nil, ErrEngineOpen
	}
	args := []string{"clickhouse"}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if err := checkDataDirFree(cfg.DataDir); err != nil {
			return nil, err
		}
		args = append(args, "--path="+cfg.DataDir)
	}
	// chDB installs handlers for SIGSEGV, SIGINT, SIGTERM… by default, which
	// steals them from the Go runtime: a Go nil dereference then hangs in
	// chDB's crash handler instead of panicking. Go keeps them.
	l.setSignalHandlers(0)
	argv, pin := cArgs(args)
	connp := l.connect(int32(len(args)), &argv[0])
	pin.Unpin()
	if connp == nil || *connp == 0 {
		return nil, fmt.Errorf("start chDB engine on %q: chdb_connect failed (is the data dir used by another process?)", cfg.DataDir)
	}
	e := &Engine{
		lib:        l,
		log:        log,
		metrics:    NewMetrics(cfg.Registerer),
		maxBody:    maxBody,
		dataDir:    cfg.DataDir,
		sem:        make(chan struct{}, 1),
		connp:      connp,
		conn:       *connp,
		libVersion: l.version(),
	}
	if err := e.hello(ctx); err != nil {
		l.closeConn(connp)
		return nil, err
	}
	processEngine = e
	log.Info("embedded clickhouse started",
		slog.String("version", e.version), slog.String("chdb", e.libVersion),
		slog.String("data_dir", cfg.DataDir))
	return e, nil
}

// hello reads the facts the HTTP interface reports and the settings baseline.
func (e *Engine) hello(ctx context.Context) error {
	out, err := e.Query(ctx, "SELECT version(), revision(), timezone(), displayName()", "TSVRaw")
	if err != nil {
		return fmt.Errorf("query engine version: %w", err)
	}
	f := strings.Split(strings.TrimSuffix(string(out), "\n"), "\t")
	if len(f) != 4 {
		return fmt.Errorf("query engine version: unexpected answer %q", out)
	}
	e.version, e.timezone, e.displayName = f[0], f[2], f[3]
	if e.revision, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return fmt.Errorf("query engine revision: %w", err)
	}
	if err := e.lock(ctx); err != nil {
		return err
	}
	defer e.unlock()
	return e.sess.init(e)
}

// Close stops the engine and releases the process slot so that [Open] can be
// called again. It waits for the running statement (bounded by ctx); close
// the [Server] first so that no request (a streamed response holds the
// engine until it is sent) keeps it waiting.
func (e *Engine) Close(ctx context.Context) error {
	if err := e.lock(ctx); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return fmt.Errorf("close embedded clickhouse: %w", err)
	}
	defer e.unlock()
	e.closed = true
	e.lib.closeConn(e.connp)
	e.connp, e.conn = nil, 0
	processMu.Lock()
	if processEngine == e {
		processEngine = nil
	}
	processMu.Unlock()
	e.log.Info("embedded clickhouse stopped", slog.String("data_dir", e.dataDir))
	return nil
}

// Version returns the ClickHouse version of the engine, as SQL version()
// reports it (e.g. "26.7.2.1").
func (e *Engine) Version() string { return e.version }

// LibVersion returns the chDB library version (e.g. "26.7.3").
func (e *Engine) LibVersion() string { return e.libVersion }

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *Metrics { return e.metrics }

// lock takes the chDB lock, honouring ctx (and defaultTimeout when ctx has
// no deadline).
func (e *Engine) lock(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for engine: %w", ctx.Err())
	}
	if e.closed {
		<-e.sem
		return ErrClosed
	}
	return nil
}

func (e *Engine) unlock() { <-e.sem }

// execResult carries what chDB reports about a finished statement.
type execResult struct {
	Data         []byte
	Elapsed      time.Duration
	ResultRows   uint64 // rows in Data
	ResultBytes  uint64 // bytes of the result set in memory
	RowsRead     uint64 // rows read from storage
	BytesRead    uint64 // bytes read from storage
	RowsWritten  uint64
	BytesWritten uint64
}

// Query runs one statement with the engine defaults and returns its output in
// format (a ClickHouse output format name; a FORMAT clause in query wins).
// Native output is chDB's, i.e. at protocol revision 0. A server error is an
// [*Exception].
func (e *Engine) Query(ctx context.Context, query, format string) ([]byte, error) {
	if err := e.lock(ctx); err != nil {
		return nil, err
	}
	defer e.unlock()
	if err := e.sess.apply(e, "", nil); err != nil {
		return nil, err
	}
	r, err := e.queryLocked(query, format)
	return r.Data, err
}

// Exec runs one statement with the engine defaults and discards its output.
func (e *Engine) Exec(ctx context.Context, query string) error {
	_, err := e.Query(ctx, query, "TSV")
	return err
}

// queryLocked runs query on chDB; the caller holds the lock. The returned
// Data is a Go copy.
func (e *Engine) queryLocked(query, format string) (execResult, error) {
	// NUL-terminate copies so that chDB never reads past them, and pass the
	// lengths without the terminator.
	q := append([]byte(query), 0)
	f := append([]byte(format), 0)
	res := e.lib.queryN(e.conn, q, uintptr(len(q)-1), f, uintptr(len(f)-1))
	if res == 0 {
		return execResult{}, errors.New("chdb_query_n returned no result")
	}
	defer e.lib.destroyResult(res)
	if msg := e.lib.resultError(res); msg != "" {
		return execResult{}, e.exception(msg)
	}
	return e.result(res, true), nil
}

// queryParamsLocked runs query with server-side {name:Type} parameters
// (chdb_query_with_params_n); values are never interpolated into the SQL.
func (e *Engine) queryParamsLocked(query, format string, params []setting) (execResult, error) {
	if len(params) == 0 {
		return e.queryLocked(query, format)
	}
	q := append([]byte(query), 0)
	f := append([]byte(format), 0)
	var res uintptr
	withCParams(params, func(names, nameLens, values, valueLens unsafe.Pointer, n uintptr) {
		res = e.lib.queryWithParamsNRaw(e.conn, q, uintptr(len(q)-1), f, uintptr(len(f)-1), names, nameLens, values, valueLens, n)
	})
	if res == 0 {
		return execResult{}, errors.New("chdb_query_with_params_n returned no result")
	}
	defer e.lib.destroyResult(res)
	if msg := e.lib.resultError(res); msg != "" {
		return execResult{}, e.exception(msg)
	}
	return e.result(res, true), nil
}

// withCParams calls f with C arrays (char**, size_t*) of parameter names and
// values, pinned for the duration of the call.
func withCParams(params []setting, f func(names, nameLens, values, valueLens unsafe.Pointer, n uintptr)) {
	var pin runtime.Pinner
	defer pin.Unpin()
	names := make([]*byte, len(params))
	values := make([]*byte, len(params))
	nameLens := make([]uintptr, len(params))
	valueLens := make([]uintptr, len(params))
	for i, p := range params {
		n := append([]byte(p.Name), 0)
		v := append([]byte(p.Value), 0)
		pin.Pin(&n[0])
		pin.Pin(&v[0])
		names[i], values[i] = &n[0], &v[0]
		nameLens[i], valueLens[i] = uintptr(len(n)-1), uintptr(len(v)-1)
	}
	pin.Pin(&names[0])
	pin.Pin(&values[0])
	pin.Pin(&nameLens[0])
	pin.Pin(&valueLens[0])
	f(unsafe.Pointer(&names[0]), unsafe.Pointer(&nameLens[0]), unsafe.Pointer(&values[0]), unsafe.Pointer(&valueLens[0]), uintptr(len(params)))
}

func (e *Engine) result(res uintptr, withData bool) execResult {
	r := execResult{
		Elapsed:      time.Duration(e.lib.resultElapsed(res) * float64(time.Second)),
		ResultRows:   e.lib.resultRowsRead(res),
		ResultBytes:  e.lib.resultBytesRead(res),
		RowsRead:     e.lib.resultStorageRowsRead(res),
		BytesRead:    e.lib.resultStorageBytesRead(res),
		RowsWritten:  e.lib.resultRowsWritten(res),
		BytesWritten: e.lib.resultBytesWritten(res),
	}
	if withData {
		r.Data = bytes.Clone(e.lib.resultBytes(res))
	}
	return r
}

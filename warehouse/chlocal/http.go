package chlocal

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/klauspost/compress/zstd"
)

// HTTP header names of ClickHouse's HTTP interface.
const (
	headerQueryID       = "X-ClickHouse-Query-Id"
	headerFormat        = "X-ClickHouse-Format"
	headerTimezone      = "X-ClickHouse-Timezone"
	headerSummary       = "X-ClickHouse-Summary"
	headerDisplayName   = "X-ClickHouse-Server-Display-Name"
	headerExceptionCode = "X-ClickHouse-Exception-Code"
)

// frameSize bounds one compressed frame of a compress=1 response, as
// ClickHouse's 1 MiB write buffer does.
const frameSize = 1 << 20

// Handler returns ClickHouse's HTTP interface backed by the engine: `/` runs
// the query from the `query` parameter and/or the POST body, `/ping` answers
// "Ok.\n". See the package README for what is supported.
func (e *Engine) Handler() http.Handler { return &handler{e: e} }

type handler struct{ e *Engine }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e := h.e
	path := r.URL.Path
	if (path == "/" || path == "") && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !r.URL.Query().Has("query") {
		path = "/ping" // ClickHouse answers a bare GET / with its default "Ok.\n"
	}
	switch path {
	case "/ping", "/replicas_status":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		n, _ := io.WriteString(w, "Ok.\n")
		e.metrics.SentBytes.Add(float64(n))
		e.metrics.Requests.WithLabelValues(labelPing, resultOK).Inc()
		e.metrics.Duration.WithLabelValues(labelPing).Observe(time.Since(start).Seconds())
		return
	case "/", "":
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, "There is no handle %s\n", r.URL.Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, POST, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	queryID := r.URL.Query().Get("query_id")
	if queryID == "" {
		queryID = r.Header.Get(headerQueryID)
	}
	if queryID == "" {
		queryID = newQueryID()
	}
	kind := labelQuery
	out, sum, format, streamed, err := h.run(w, r, queryID, &kind)
	result := resultOK
	switch {
	case streamed:
		// Written as it came; a failure was reported in the body.
		if err != nil {
			result = resultError
		}
	case err != nil:
		result = resultError
		h.writeError(w, r, queryID, err)
	default:
		h.writeResult(w, r, queryID, format, sum, out)
	}
	e.metrics.Requests.WithLabelValues(kind, result).Inc()
	e.metrics.Duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}

// run parses and executes one request. It returns the response body before
// response compression, or streamed=true when it already wrote the response
// (a read streamed from chDB as the engine produced it).
func (h *handler) run(w http.ResponseWriter, r *http.Request, queryID string, kind *string) (out []byte, res execResult, format string, streamed bool, err error) {
	e := h.e
	params := r.URL.Query()
	body, release, err := h.readBody(r, params.Get("decompress") == "1")
	if err != nil {
		return nil, execResult{}, "", false, err
	}
	defer release()
	req, err := parseRequest(params, r.Method, body)
	if err != nil {
		return nil, execResult{}, "", false, err
	}
	if len(req.Params) > 0 && req.Stmt.HasData {
		return nil, execResult{}, "", false, newException(codeNotImplemented, "Query parameters (param_*) with INSERT data are not supported by the embedded ClickHouse")
	}
	ctx := r.Context()
	st := req.Stmt
	if st.Kind == kindInsert && st.HasData {
		*kind = labelInsert
	}

	waitStart := time.Now()
	if err := e.lock(ctx); err != nil {
		return nil, execResult{}, "", false, newException(codeQueryWasCancelled, "Query was cancelled: %v", err)
	}
	e.metrics.LockWait.Observe(time.Since(waitStart).Seconds())
	var types []string
	if st.Select && r.Method != http.MethodHead && params.Get("wait_end_of_query") != "1" {
		streamed, res, types, err = h.streamLocked(w, r, req, queryID)
		if x := (*Exception)(nil); !streamed && errors.As(err, &x) && x.Code == codeBadArguments &&
			strings.HasPrefix(x.Message, "Streaming query is not supported") {
			res, types, err = h.execLocked(req)
		}
	} else {
		res, types, err = h.execLocked(req)
	}
	e.unlock()
	if streamed {
		return nil, res, req.Format, true, err
	}
	if err != nil {
		e.log.Debug("query failed", slog.String(logKeyQueryID, queryID), slog.Any("err", err))
		return nil, execResult{}, "", false, err
	}
	out = res.Data
	if st.Kind == kindRead && strings.EqualFold(req.Format, "Native") {
		rev := min(req.ProtocolVersion, e.revision)
		if out, err = reframeNative(out, rev, types); err != nil {
			return nil, execResult{}, "", false, newException(codeNotImplemented, "Cannot send Native result at protocol revision %d: %v", rev, err)
		}
	}
	return out, res, req.Format, false, nil
}

// execLocked runs the request on chDB; the caller holds the engine lock. For
// a Native read whose result has a zone-less DateTime it also returns the
// declared column types.
func (h *handler) execLocked(req *request) (execResult, []string, error) {
	e := h.e
	st := req.Stmt
	if err := e.sess.apply(e, req.Database, req.Settings); err != nil {
		return execResult{}, nil, err
	}
	switch {
	case st.Kind == kindInsert && st.HasData:
		r, err := e.insertLocked(st.SQL, st.Format, st.Data)
		return r, nil, err
	case st.Kind == kindSet || st.Kind == kindUse:
		// Without a session, SET and USE last for this request only.
		e.sess.dirty = true
		r, err := e.queryLocked(st.SQL, req.Format)
		return r, nil, err
	}
	r, err := e.queryParamsLocked(st.SQL, req.Format, req.Params)
	if err != nil || st.Kind != kindRead || !strings.EqualFold(req.Format, "Native") || !nativeLacksZone(r.Data) {
		return r, nil, err
	}
	return r, h.declaredTypesLocked(req), nil
}

// declaredTypesLocked returns the declared result types of a read (nil when
// unknown), to restore DateTime zones chDB's Native output dropped.
func (h *handler) declaredTypesLocked(req *request) []string {
	e := h.e
	d, err := e.queryParamsLocked("DESCRIBE ("+req.Stmt.withoutFormat()+")", "TSVRaw", req.Params)
	if err != nil {
		e.log.Debug("describe result types", slog.Any("err", err))
		return nil
	}
	var types []string
	for line := range strings.SplitSeq(strings.TrimSuffix(string(d.Data), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 {
			return nil
		}
		types = append(types, f[1])
	}
	return types
}

// nativeLacksZone reports whether the first block of a Native result has a
// column type with a zone-less DateTime (every block has the same types).
func nativeLacksZone(b []byte) bool {
	w := nativeWalker{b: b}
	ncols, err := w.uvarint()
	if err != nil {
		return false
	}
	nrows, err := w.uvarint()
	if err != nil {
		return false
	}
	for range ncols {
		if _, err := w.str(); err != nil {
			return false
		}
		typ, err := w.str()
		if err != nil {
			return false
		}
		if lacksZone(typ) {
			return true
		}
		if nrows > 0 {
			t, err := parseType(typ)
			if err != nil || w.prefix(t) != nil || w.data(t, nrows) != nil {
				return false
			}
		}
	}
	return false
}

// readBody reads the request body, undoing Content-Encoding and (with
// decompress=1) ClickHouse's compressed-block framing, bounded by the
// engine's MaxRequestBytes on the wire and after decoding.
func (h *handler) readBody(r *http.Request, framed bool) (body []byte, release func(), err error) {
	release = func() {}
	if r.Method != http.MethodPost || r.Body == nil {
		return nil, release, nil
	}
	e := h.e
	if r.ContentLength > e.maxBody {
		return nil, release, tooLarge(e.maxBody)
	}
	wire := &countingReader{r: http.MaxBytesReader(nil, r.Body, e.maxBody)}
	defer func() { e.metrics.ReceivedBytes.Add(float64(wire.n)) }()
	var src io.Reader = wire
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity", "none":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, release, decodeError(enc, err)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		zr, err := zlib.NewReader(wire)
		if err != nil {
			return nil, release, decodeError(enc, err)
		}
		defer zr.Close()
		src = zr
	case "zstd":
		zr, err := zstd.NewReader(wire, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, release, decodeError(enc, err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, release, newException(codeUnknownCompression, "Unknown HTTP Content-Encoding %q: supported are gzip, deflate, zstd", truncate(enc, 32))
	}
	if framed {
		src = compress.NewReader(src)
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	release = func() {
		if buf.Cap() <= maxPooledBody {
			bodyPool.Put(buf)
		}
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err = buf.ReadFrom(io.LimitReader(src, e.maxBody+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(buf.Len()) > e.maxBody:
		return nil, release, tooLarge(e.maxBody)
	case err != nil && framed && buf.Len() > 0 && errors.Is(err, io.EOF):
		// ch-go's reader reports the end of the framed stream as EOF.
	case err != nil:
		return nil, release, decodeError("request body", err)
	}
	return buf.Bytes(), release, nil
}

// bodyPool recycles request body buffers: batches of a few MiB each would
// otherwise be fresh, zeroed memory on every insert.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps outsized buffers out of the pool.
const maxPooledBody = 32 << 20

func tooLarge(limit int64) error {
	return newException(codeQueryIsTooLarge, "Request body exceeds the limit of %d bytes (MaxRequestBytes)", limit)
}

func decodeError(what string, err error) error {
	return newException(codeCannotDecompress, "Cannot decompress %s: %v", what, err)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// writeResult writes a successful response with ClickHouse's headers,
// compressed as the client asked.
func (h *handler) writeResult(w http.ResponseWriter, r *http.Request, queryID, format string, sum execResult, out []byte) {
	e := h.e
	params := r.URL.Query()
	hd := w.Header()
	h.commonHeaders(hd, queryID)
	hd.Set(headerFormat, format)
	hd.Set("Content-Type", contentType(format))
	hd.Set(headerSummary, summary(sum))

	body := out
	switch {
	case params.Get("compress") == "1":
		method := compress.LZ4
		if m := params.Get("network_compression_method"); strings.EqualFold(m, "zstd") {
			method = compress.ZSTD
		} else if strings.EqualFold(m, "none") {
			method = compress.None
		}
		framed, err := frame(out, method)
		if err != nil {
			h.writeError(w, r, queryID, newException(codeUnknownException, "compress response: %v", err))
			return
		}
		body = framed
	case params.Get("enable_http_compression") == "1":
		enc, compressed, err := encodeHTTP(out, params, r.Header.Get("Accept-Encoding"))
		if err != nil {
			h.writeError(w, r, queryID, newException(codeUnknownException, "compress response: %v", err))
			return
		}
		if enc != "" {
			hd.Set("Content-Encoding", enc)
			hd.Add("Vary", "Accept-Encoding")
			body = compressed
		}
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	n, err := w.Write(body)
	e.metrics.SentBytes.Add(float64(n))
	if err != nil {
		e.log.Debug("write response", slog.String(logKeyQueryID, queryID), slog.Any("err", err))
	}
}

func (h *handler) commonHeaders(hd http.Header, queryID string) {
	hd.Set(headerQueryID, queryID)
	hd.Set(headerDisplayName, h.e.displayName)
	hd.Set(headerTimezone, h.e.timezone)
	hd.Set("Keep-Alive", "timeout=10")
}

// writeError writes an exception the way ClickHouse does: status from the
// code, X-ClickHouse-Exception-Code, body "Code: N. DB::Exception: …".
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, queryID string, err error) {
	e := h.e
	var x *Exception
	internal := !errors.As(err, &x)
	if internal {
		x = newException(codeUnknownException, "%v", err)
	}
	hd := w.Header()
	h.commonHeaders(hd, queryID)
	hd.Set(headerExceptionCode, strconv.Itoa(int(x.Code)))
	hd.Set("Content-Type", "text/plain; charset=UTF-8")
	status := x.HTTPStatus()
	if x.Code == codeQueryIsTooLarge {
		// The body was not read to the end: do not reuse the connection.
		hd.Set("Connection", "close")
	}
	body := fmt.Sprintf("%s (version %s)\n", x.Error(), e.version)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	n, _ := io.WriteString(w, body)
	e.metrics.SentBytes.Add(float64(n))
	// Query errors are the client's business (ClickHouse answers most with
	// 500); only failures of this package are worth a warning.
	if internal {
		e.log.Warn("request failed", slog.String(logKeyQueryID, queryID), slog.Any("err", err))
	}
}

// frame splits out into ClickHouse compressed blocks.
func frame(out []byte, method compress.Method) ([]byte, error) {
	cw := compress.NewWriter(compress.LevelZero, method)
	dst := make([]byte, 0, len(out)/2+64)
	for off := 0; off < len(out); off += frameSize {
		if err := cw.Compress(out[off:min(off+frameSize, len(out))]); err != nil {
			return nil, err
		}
		dst = append(dst, cw.Data...)
	}
	return dst, nil
}

// encodeHTTP compresses out with the first of gzip, deflate, zstd the client
// accepts; it returns enc == "" when none applies.
func encodeHTTP(out []byte, params map[string][]string, accept string) (enc string, body []byte, err error) {
	bw, enc := newBodyWriter(map[string][]string{
		"enable_http_compression":     {"1"},
		"http_zlib_compression_level": params["http_zlib_compression_level"],
	}, accept)
	if enc == "" {
		return "", out, nil
	}
	var buf bytes.Buffer
	bw.reset(&buf)
	if bw.httpEnc == nil {
		return "", out, nil
	}
	if _, err := bw.Write(out); err != nil {
		return "", nil, err
	}
	if err := bw.Close(); err != nil {
		return "", nil, err
	}
	return enc, buf.Bytes(), nil
}

// contentType mirrors the Content-Type ClickHouse sends per output format.
func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case strings.HasPrefix(f, "tabseparated") || strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case strings.HasPrefix(f, "json") && strings.Contains(f, "eachrow"):
		return "application/x-ndjson; charset=UTF-8"
	case strings.HasPrefix(f, "json"):
		return "application/json; charset=UTF-8"
	case f == "native" || strings.HasPrefix(f, "rowbinary") || f == "parquet" ||
		strings.HasPrefix(f, "arrow") || f == "orc" || f == "avro" || f == "msgpack":
		return "application/octet-stream"
	}
	return "text/plain; charset=UTF-8"
}

func summary(r execResult) string {
	return fmt.Sprintf(`{"read_rows":"%d","read_bytes":"%d","written_rows":"%d","written_bytes":"%d","total_rows_to_read":"%d","result_rows":"%d","result_bytes":"%d","elapsed_ns":"%d"}`,
		r.RowsRead, r.BytesRead, r.RowsWritten, r.BytesWritten, r.RowsRead, r.ResultRows, r.ResultBytes, r.Elapsed.Nanoseconds())
}

// newQueryID returns a random UUIDv4 string, as ClickHouse generates.
func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

package chlocal

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/klauspost/compress/zstd"
)

// streamLocked runs a read with chDB's streaming query and writes each chunk
// to w as the engine produces it, so a large result is never held whole in
// memory. The caller holds the engine lock (a slow client holds the engine).
//
// Errors before the first chunk return streamed=false and the caller writes a
// normal exception response. A failure after the headers went out is written
// in-band as ClickHouse does ("__exception__" then "Code: N. …"), and
// streamed=true is returned with the error. A Native result with a zone-less
// DateTime is collected whole instead (streamed=false, res.Data set, types
// set): its declared types need a DESCRIBE, which cannot run while a stream
// is open.
func (h *handler) streamLocked(w http.ResponseWriter, r *http.Request, req *request, queryID string) (streamed bool, res execResult, types []string, err error) {
	e := h.e
	if err := e.sess.apply(e, req.Database, req.Settings); err != nil {
		return false, execResult{}, nil, err
	}
	q := append([]byte(req.Stmt.SQL), 0)
	f := append([]byte(req.Format), 0)
	var sh uintptr
	if len(req.Params) == 0 {
		sh = e.lib.streamQueryN(e.conn, q, uintptr(len(q)-1), f, uintptr(len(f)-1))
	} else {
		withCParams(req.Params, func(names, nameLens, values, valueLens unsafe.Pointer, n uintptr) {
			sh = e.lib.streamQueryParamsNRaw(e.conn, q, uintptr(len(q)-1), f, uintptr(len(f)-1), names, nameLens, values, valueLens, n)
		})
	}
	if sh == 0 {
		return false, execResult{}, nil, errors.New("chdb_stream_query_n returned no result")
	}
	open := true
	closeStream := func(cancel bool) {
		if open {
			if cancel {
				e.lib.streamCancelQuery(e.conn, sh)
			}
			e.lib.destroyResult(sh)
			open = false
		}
	}
	defer closeStream(true)
	if msg := e.lib.resultError(sh); msg != "" {
		return false, execResult{}, nil, e.exception(msg)
	}
	// fetch returns the next chunk's data (a Go copy), or nil at the end.
	fetch := func() ([]byte, error) {
		c := e.lib.streamFetchResult(e.conn, sh)
		if c == 0 {
			return nil, errors.New("chdb_stream_fetch_result returned no result")
		}
		defer e.lib.destroyResult(c)
		if msg := e.lib.resultError(c); msg != "" {
			return nil, e.exception(msg)
		}
		part := e.result(c, true)
		res.ResultRows += part.ResultRows
		res.ResultBytes += part.ResultBytes
		res.RowsRead += part.RowsRead
		res.BytesRead += part.BytesRead
		res.Elapsed += part.Elapsed
		return part.Data, nil
	}
	first, err := fetch()
	if err != nil {
		return false, execResult{}, nil, err
	}
	native := strings.EqualFold(req.Format, "Native")
	if native && nativeLacksZone(first) {
		all := bytes.NewBuffer(first)
		for {
			chunk, err := fetch()
			if err != nil {
				return false, execResult{}, nil, err
			}
			if len(chunk) == 0 {
				break
			}
			all.Write(chunk)
		}
		closeStream(false)
		res.Data = all.Bytes()
		return false, res, h.declaredTypesLocked(req), nil
	}
	rev := min(req.ProtocolVersion, e.revision)
	prepare := func(chunk []byte) ([]byte, error) {
		if !native {
			return chunk, nil
		}
		out, err := reframeNative(chunk, rev, nil)
		if err != nil {
			return nil, newException(codeNotImplemented, "Cannot send Native result at protocol revision %d: %v", rev, err)
		}
		return out, nil
	}
	out, err := prepare(first)
	if err != nil {
		return false, execResult{}, nil, err
	}

	// Headers go out now: from here on failures are reported in-band.
	params := r.URL.Query()
	hd := w.Header()
	h.commonHeaders(hd, queryID)
	hd.Set(headerFormat, req.Format)
	hd.Set("Content-Type", contentType(req.Format))
	hd.Set(headerSummary, summary(execResult{})) // totals are unknown before the end
	bw, enc := newBodyWriter(params, r.Header.Get("Accept-Encoding"))
	if enc != "" {
		hd.Set("Content-Encoding", enc)
		hd.Add("Vary", "Accept-Encoding")
	}
	w.WriteHeader(http.StatusOK)
	counted := &countingWriter{w: w}
	bw.reset(counted)
	defer func() { e.metrics.SentBytes.Add(float64(counted.n)) }()

	for len(out) > 0 {
		if _, werr := bw.Write(out); werr != nil {
			// The client went away: stop the query.
			e.log.Debug("write streamed response", slog.String(logKeyQueryID, queryID), slog.Any("err", werr))
			return true, res, nil, newException(codeQueryWasCancelled, "Query was cancelled: %v", werr)
		}
		if err := r.Context().Err(); err != nil {
			return true, res, nil, newException(codeQueryWasCancelled, "Query was cancelled: %v", err)
		}
		chunk, err := fetch()
		if err == nil {
			out, err = prepare(chunk)
		}
		if err != nil {
			bw.exception(fmt.Sprintf("%s (version %s)\n", asException(err).Error(), e.version))
			return true, res, nil, err
		}
	}
	closeStream(false)
	if err := bw.Close(); err != nil {
		return true, res, nil, newException(codeQueryWasCancelled, "Query was cancelled: %v", err)
	}
	return true, res, nil, nil
}

func asException(err error) *Exception {
	var x *Exception
	if errors.As(err, &x) {
		return x
	}
	return newException(codeUnknownException, "%v", err)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// bodyWriter writes a response body in the encoding the client asked for.
type bodyWriter struct {
	dst     io.Writer
	framed  *compress.Writer // compress=1
	method  compress.Method
	httpEnc io.WriteCloser // Content-Encoding stream
	newHTTP func(io.Writer) (io.WriteCloser, error)
}

// newBodyWriter picks the response encoding: compress=1 framing, else an
// HTTP Content-Encoding when enable_http_compression=1, else identity.
func newBodyWriter(params map[string][]string, accept string) (*bodyWriter, string) {
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	bw := &bodyWriter{}
	if get("compress") == "1" {
		bw.method = compress.LZ4
		if m := get("network_compression_method"); strings.EqualFold(m, "zstd") {
			bw.method = compress.ZSTD
		} else if strings.EqualFold(m, "none") {
			bw.method = compress.None
		}
		bw.framed = compress.NewWriter(compress.LevelZero, bw.method)
		return bw, ""
	}
	if get("enable_http_compression") != "1" {
		return bw, ""
	}
	accept = strings.ToLower(accept)
	switch {
	case strings.Contains(accept, "gzip"):
		bw.newHTTP = func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, zlibLevel(get)) }
		return bw, "gzip"
	case strings.Contains(accept, "deflate"):
		bw.newHTTP = func(w io.Writer) (io.WriteCloser, error) { return zlib.NewWriterLevel(w, zlibLevel(get)) }
		return bw, "deflate"
	case strings.Contains(accept, "zstd"):
		bw.newHTTP = func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		}
		return bw, "zstd"
	}
	return bw, ""
}

// zlibLevel is http_zlib_compression_level (1-9), default 3 as in ClickHouse.
func zlibLevel(get func(string) string) int {
	if l, err := strconv.Atoi(get("http_zlib_compression_level")); err == nil && l >= 1 && l <= 9 {
		return l
	}
	return 3
}

func (b *bodyWriter) reset(dst io.Writer) {
	b.dst = dst
	if b.newHTTP != nil {
		zw, err := b.newHTTP(dst)
		if err == nil {
			b.httpEnc = zw
		}
	}
}

func (b *bodyWriter) Write(p []byte) (int, error) {
	switch {
	case b.framed != nil:
		for off := 0; off < len(p); off += frameSize {
			if err := b.framed.Compress(p[off:min(off+frameSize, len(p))]); err != nil {
				return off, err
			}
			if _, err := b.dst.Write(b.framed.Data); err != nil {
				return off, err
			}
		}
		return len(p), nil
	case b.httpEnc != nil:
		return b.httpEnc.Write(p)
	}
	return b.dst.Write(p)
}

// exception reports a failure after the headers were sent, framed as
// ClickHouse does; clients such as clickhouse-go detect it. Inside an HTTP
// Content-Encoding it is written encoded, after framed blocks it is plain.
func (b *bodyWriter) exception(text string) {
	block := "\r\n__exception__\r\n" + text
	if b.httpEnc != nil {
		_, _ = io.WriteString(b.httpEnc, block)
		_ = b.httpEnc.Close()
		return
	}
	_, _ = io.WriteString(b.dst, block)
}

func (b *bodyWriter) Close() error {
	if b.httpEnc != nil {
		return b.httpEnc.Close()
	}
	return nil
}

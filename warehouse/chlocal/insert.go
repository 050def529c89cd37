package chlocal

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// appendChunk bounds one chdb_stream_append call; chDB copies each chunk.
const appendChunk = 4 << 20

// InsertNative inserts a Native-format body (protocol revision 0, as
// clickhouse-go encodes HTTP batches) through chDB's streaming insert and
// returns the number of rows written. query is "INSERT INTO t [(cols)]" with
// or without "FORMAT Native"; the data never passes through the SQL parser,
// so a body containing blank lines is inserted whole.
func (e *Engine) InsertNative(ctx context.Context, query string, body []byte) (uint64, error) {
	st, err := parseStatement([]byte(query))
	if err != nil {
		return 0, err
	}
	if st.Kind != kindInsert {
		return 0, newException(codeBadArguments, "InsertNative needs an INSERT statement")
	}
	if st.HasData && (st.Format != "Native" || len(st.Data) > 0) {
		return 0, newException(codeBadArguments, "InsertNative takes the data as body, in format Native")
	}
	if err := e.lock(ctx); err != nil {
		return 0, err
	}
	defer e.unlock()
	if err := e.sess.apply(e, "", nil); err != nil {
		return 0, err
	}
	r, err := e.insertLocked(st.SQL, "Native", body)
	return r.RowsWritten, err
}

// insertLocked streams data into chDB for stmt (an INSERT without FORMAT
// clause or inline data) in the given input format. The caller holds the lock.
func (e *Engine) insertLocked(stmt, format string, data []byte) (execResult, error) {
	if len(data) == 0 {
		return execResult{}, newException(codeNoDataToInsert, "No data to insert")
	}
	q := append([]byte(stmt), 0)
	f := append([]byte(format), 0)
	s := e.lib.streamInsertN(e.conn, q, uintptr(len(q)-1), f, uintptr(len(f)-1))
	if s == 0 {
		return execResult{}, errors.New("chdb_stream_insert_n returned no stream")
	}
	defer e.lib.destroyInsertStream(s)
	if msg := e.lib.streamInsertError(s); msg != "" {
		return execResult{}, e.exception(msg)
	}
	for off := 0; off < len(data); off += appendChunk {
		chunk := data[off:min(off+appendChunk, len(data))]
		rc := e.lib.streamAppend(s, unsafe.Pointer(&chunk[0]), uintptr(len(chunk)))
		runtime.KeepAlive(chunk)
		if rc != 0 {
			msg := e.lib.streamInsertError(s)
			e.lib.streamCancelInsert(s)
			if msg == "" {
				msg = fmt.Sprintf("Code: %d. DB::Exception: streaming insert refused the data. (%s)", codeUnknownException, codeNames[codeUnknownException])
			}
			return execResult{}, e.exception(msg)
		}
	}
	res := e.lib.streamDone(s)
	if res == 0 {
		return execResult{}, errors.New("chdb_stream_done returned no result")
	}
	defer e.lib.destroyResult(res)
	if msg := e.lib.resultError(res); msg != "" {
		return execResult{}, e.exception(msg)
	}
	return e.result(res, false), nil
}

package chlocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ChDBVersion is the chDB release whose libchdb.so `make deps` fetches and
// whose path [DefaultLibPath] points at.
const ChDBVersion = "26.7.3-stable.1"

// EnvLibPath names the environment variable that overrides the library path.
const EnvLibPath = "VIGIL_CHDB_LIB"

// LibraryHint says what to do about [ErrLibraryNotFound] and
// [ErrLibraryInvalid], for a CLI's "Try:" line.
const LibraryHint = "make deps (or pass --clickhouse clickhouse://… to use a ClickHouse server)"

// hint is appended to library errors: what to run to get a working engine.
const hint = "run `make deps` to fetch it, or point Vigil at a ClickHouse server with --clickhouse clickhouse://…"

var (
	// ErrLibraryNotFound is returned by [Open] when libchdb.so does not exist
	// at the resolved path. The message says how to fetch it.
	ErrLibraryNotFound = errors.New("embedded ClickHouse library (libchdb.so) not found; " + hint)

	// ErrLibraryInvalid is returned by [Open] when the file at the resolved
	// path is not a loadable libchdb.so (corrupt, truncated, wrong
	// architecture, or missing a chDB symbol).
	ErrLibraryInvalid = errors.New("embedded ClickHouse library (libchdb.so) is not loadable; " + hint)
)

// DefaultLibPath returns where libchdb.so is looked up when [Config.LibPath]
// is empty: $VIGIL_CHDB_LIB if set, else
// ${XDG_CACHE_HOME:-~/.cache}/vigil/chdb/<ChDBVersion>/libchdb.so, the path
// `make deps` writes.
func DefaultLibPath() string {
	if p := os.Getenv(EnvLibPath); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "vigil", "chdb", ChDBVersion, "libchdb.so")
}

// lib holds the C entry points of libchdb.so. Opaque C handles are uintptr;
// they are never dereferenced from Go except through the typed returns.
type lib struct {
	path string

	version                func() string
	setSignalHandlers      func(enabled int32)
	connect                func(argc int32, argv **byte) *uintptr
	closeConn              func(conn *uintptr)
	queryN                 func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr) uintptr
	resultBuffer           func(res uintptr) unsafe.Pointer
	resultLength           func(res uintptr) uintptr
	resultError            func(res uintptr) string
	resultElapsed          func(res uintptr) float64
	resultRowsRead         func(res uintptr) uint64
	resultBytesRead        func(res uintptr) uint64
	resultStorageRowsRead  func(res uintptr) uint64
	resultStorageBytesRead func(res uintptr) uint64
	resultRowsWritten      func(res uintptr) uint64
	resultBytesWritten     func(res uintptr) uint64
	destroyResult          func(res uintptr)
	streamInsertN          func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr) uintptr
	streamAppend           func(stream uintptr, data unsafe.Pointer, n uintptr) int32
	streamDone             func(stream uintptr) uintptr
	streamInsertError      func(stream uintptr) string
	streamCancelInsert     func(stream uintptr)
	destroyInsertStream    func(stream uintptr)
	streamQueryN           func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr) uintptr
	streamFetchResult      func(conn uintptr, res uintptr) uintptr
	streamCancelQuery      func(conn uintptr, res uintptr)
	streamQueryParamsNRaw  func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr, names, nameLens, values, valueLens unsafe.Pointer, n uintptr) uintptr
	queryWithParamsNRaw    func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr, names, nameLens, values, valueLens unsafe.Pointer, n uintptr) uintptr
	streamInsertParamsNRaw func(conn uintptr, query []byte, queryLen uintptr, format []byte, formatLen uintptr, names, nameLens, values, valueLens unsafe.Pointer, n uintptr) uintptr
}

var (
	libMu     sync.Mutex
	libLoaded = map[string]*lib{}
)

// loadLib opens libchdb.so at path once per process and resolves every entry
// point. dlopen of a 500 MiB library is not free and a library cannot be
// unloaded safely once the engine ran, so handles are cached by path.
func loadLib(path string) (*lib, error) {
	libMu.Lock()
	defer libMu.Unlock()
	if l, ok := libLoaded[path]; ok {
		return l, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (looked in %s; set %s or Config.LibPath to override)", ErrLibraryNotFound, path, EnvLibPath)
		}
		return nil, fmt.Errorf("%w: stat %s: %w", ErrLibraryNotFound, path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrLibraryInvalid, path)
	}
	if err := checkELF(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLibraryInvalid, path, err)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%w: dlopen %s: %w", ErrLibraryInvalid, path, err)
	}
	l := &lib{path: path}
	syms := []struct {
		fn   any
		name string
	}{
		{&l.version, "chdb_version"},
		{&l.setSignalHandlers, "chdb_set_signal_handlers_enabled"},
		{&l.connect, "chdb_connect"},
		{&l.closeConn, "chdb_close_conn"},
		{&l.queryN, "chdb_query_n"},
		{&l.resultBuffer, "chdb_result_buffer"},
		{&l.resultLength, "chdb_result_length"},
		{&l.resultError, "chdb_result_error"},
		{&l.resultElapsed, "chdb_result_elapsed"},
		{&l.resultRowsRead, "chdb_result_rows_read"},
		{&l.resultBytesRead, "chdb_result_bytes_read"},
		{&l.resultStorageRowsRead, "chdb_result_storage_rows_read"},
		{&l.resultStorageBytesRead, "chdb_result_storage_bytes_read"},
		{&l.resultRowsWritten, "chdb_result_rows_written"},
		{&l.resultBytesWritten, "chdb_result_bytes_written"},
		{&l.destroyResult, "chdb_destroy_query_result"},
		{&l.streamInsertN, "chdb_stream_insert_n"},
		{&l.streamAppend, "chdb_stream_append"},
		{&l.streamDone, "chdb_stream_done"},
		{&l.streamInsertError, "chdb_stream_insert_error"},
		{&l.streamCancelInsert, "chdb_stream_cancel_insert"},
		{&l.destroyInsertStream, "chdb_destroy_insert_stream"},
		{&l.streamQueryN, "chdb_stream_query_n"},
		{&l.streamFetchResult, "chdb_stream_fetch_result"},
		{&l.streamCancelQuery, "chdb_stream_cancel_query"},
		{&l.queryWithParamsNRaw, "chdb_query_with_params_n"},
		{&l.streamQueryParamsNRaw, "chdb_stream_query_with_params_n"},
		{&l.streamInsertParamsNRaw, "chdb_stream_insert_with_params_n"},
	}
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			// Leave the handle open: dlclose of a half-used C++ library can
			// run static destructors we know nothing about.
			return nil, fmt.Errorf("%w: %s has no symbol %s (not a chDB %s build?)", ErrLibraryInvalid, path, s.name, ChDBVersion)
		}
		purego.RegisterFunc(s.fn, addr)
	}
	libLoaded[path] = l
	return l, nil
}

// checkELF rejects files that are obviously not a shared object before they
// reach dlopen, so a truncated download gives a clear message.
func checkELF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [20]byte
	n, _ := f.Read(hdr[:])
	if n < len(hdr) || string(hdr[:4]) != "\x7fELF" {
		return errors.New("not an ELF shared object")
	}
	if hdr[16] != 3 { // e_type ET_DYN, little-endian low byte
		return errors.New("ELF file is not a shared object")
	}
	return nil
}

// cArgs builds a C argv (char**) from Go strings. The returned pinner keeps
// the memory in place until unpinned after the call.
func cArgs(args []string) ([]*byte, *runtime.Pinner) {
	p := new(runtime.Pinner)
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		b := append([]byte(a), 0)
		p.Pin(&b[0])
		argv[i] = &b[0]
	}
	p.Pin(&argv[0])
	return argv, p
}

// resultBytes returns the result buffer as a Go slice aliasing C memory; it is
// valid until destroyResult(res).
func (l *lib) resultBytes(res uintptr) []byte {
	n := l.resultLength(res)
	if n == 0 {
		return nil
	}
	p := l.resultBuffer(res)
	if p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

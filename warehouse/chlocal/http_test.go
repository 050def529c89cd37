package chlocal_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// rawResponse is what a curl-style request got back.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// do sends a raw HTTP request to the shared server. params are URL
// parameters; a nil body sends GET.
func do(tb testing.TB, params url.Values, body io.Reader, header http.Header) rawResponse {
	tb.Helper()
	u := "http://" + testServer.Addr() + "/?" + params.Encode()
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func query(q string, kv ...string) url.Values {
	v := url.Values{}
	if q != "" {
		v.Set("query", q)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestRawHTTP(t *testing.T) {
	db := newDatabase(t)
	if err := testEngine.Exec(context.Background(), "CREATE TABLE "+db+".t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		params     url.Values
		body       string // POST when not empty
		wantStatus int
		wantBody   string // prefix
		wantHeader map[string]string
	}{
		{
			name: "version", params: query("SELECT version()"), wantStatus: 200, wantBody: testEngine.Version() + "\n",
			wantHeader: map[string]string{"X-ClickHouse-Format": "TabSeparated", "X-ClickHouse-Timezone": "Etc/UTC"},
		},
		{name: "select 1", params: query("SELECT 1"), wantStatus: 200, wantBody: "1\n"},
		{
			name: "malformed SQL", params: query("SELEC 1"), wantStatus: 400, wantBody: "Code: 62. DB::Exception: Syntax error",
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "62"},
		},
		{
			name: "unknown table", params: query("SELECT * FROM nope_" + db), wantStatus: 404, wantBody: "Code: 60. DB::Exception:",
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "60"},
		},
		{
			name: "multi-statement in body", params: url.Values{}, body: "SELECT 1; SELECT 2", wantStatus: 400,
			wantBody:   "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed)",
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "62"},
		},
		{
			name: "multi-statement in url", params: query("SELECT 1; DROP DATABASE " + db), wantStatus: 400,
			wantBody: "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed)",
		},
		{name: "trailing semicolon", params: query("SELECT 1;"), wantStatus: 200, wantBody: "1\n"},
		{name: "semicolon in string", params: query("SELECT 'a;b'"), wantStatus: 200, wantBody: "a;b\n"},
		{
			name: "GET is readonly", params: query("CREATE TABLE " + db + ".x (a UInt8) ENGINE = Memory"), wantStatus: 500,
			wantBody: "Code: 164. DB::Exception: Cannot execute query in readonly mode",
		},
		{
			name: "default_format", params: query("SELECT 1 AS x", "default_format", "JSONEachRow"), wantStatus: 200, wantBody: `{"x":1}`,
			wantHeader: map[string]string{"X-ClickHouse-Format": "JSONEachRow", "Content-Type": "application/x-ndjson; charset=UTF-8"},
		},
		{
			name: "FORMAT clause wins", params: query("SELECT 1 AS x FORMAT CSVWithNames", "default_format", "JSONEachRow"), wantStatus: 200,
			wantBody: "\"x\"\n1\n", wantHeader: map[string]string{"X-ClickHouse-Format": "CSVWithNames"},
		},
		{name: "database param", params: query("SELECT currentDatabase()", "database", db), wantStatus: 200, wantBody: db + "\n"},
		{name: "database back to default", params: query("SELECT currentDatabase()"), wantStatus: 200, wantBody: "default\n"},
		{
			name: "unknown database", params: query("SELECT 1", "database", "nope_"+db), wantStatus: 404,
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "81"},
		},
		{name: "setting param", params: query("SELECT getSetting('max_threads')", "max_threads", "3"), wantStatus: 200, wantBody: "3\n"},
		{name: "setting restored", params: query("SELECT changed FROM system.settings WHERE name = 'max_threads'"), wantStatus: 200, wantBody: "0\n"},
		{
			name: "unknown setting", params: query("SELECT 1", "no_such_setting_x", "1"), wantStatus: 404,
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "115"},
		},
		{name: "client SET", params: url.Values{}, body: "SET max_threads = 5", wantStatus: 200},
		{name: "client SET lasts one request", params: query("SELECT changed FROM system.settings WHERE name = 'max_threads'"), wantStatus: 200, wantBody: "0\n"},
		{name: "client USE", params: url.Values{}, body: "USE " + db, wantStatus: 200},
		{name: "client USE lasts one request", params: query("SELECT currentDatabase()"), wantStatus: 200, wantBody: "default\n"},
		{name: "unknown setting in SET", params: url.Values{}, body: "SET no_such_setting_y = 1", wantStatus: 404},
		{name: "query in body", params: url.Values{}, body: "SELECT 40 + 2", wantStatus: 200, wantBody: "42\n"},
		{name: "query in url and body", params: query("SELECT"), body: "41 + 1", wantStatus: 200, wantBody: "42\n"},
		{name: "insert TSV in body", params: url.Values{}, body: "INSERT INTO " + db + ".t FORMAT TSV\n1\tx\n2\ty\n", wantStatus: 200},
		{name: "insert TSV query param", params: query("INSERT INTO " + db + ".t FORMAT TabSeparated"), body: "3\tz\n", wantStatus: 200},
		{name: "insert VALUES", params: url.Values{}, body: "INSERT INTO " + db + ".t VALUES (4, 'line\n\nSELECT 1'), (5, 'q')", wantStatus: 200},
		{name: "insert SELECT", params: url.Values{}, body: "INSERT INTO " + db + ".t SELECT 6, 'sel'", wantStatus: 200},
		{
			name: "insert JSONEachRow with blank lines", params: query("INSERT INTO " + db + ".t FORMAT JSONEachRow"),
			body: "{\"a\":7,\"s\":\"j\"}\n\n{\"a\":8,\"s\":\"k\"}\n\n\n{\"a\":9,\"s\":\"l\"}\n", wantStatus: 200,
		},
		{name: "row count after inserts", params: query("SELECT count(), sum(a) FROM " + db + ".t"), wantStatus: 200, wantBody: "9\t45\n"},
		{
			name: "inline data is not SQL", params: url.Values{}, body: "INSERT INTO " + db + ".t FORMAT TSV\n10\tx\n\nDROP TABLE " + db + ".t\n",
			wantStatus: 400, wantBody: "Code: ",
		},
		{
			name: "VALUES tail is not SQL", params: url.Values{}, body: "INSERT INTO " + db + ".t VALUES (11, 'a'); DROP TABLE " + db + ".t",
			wantStatus: 400, wantBody: "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed)",
		},
		{name: "table survived", params: query("SELECT count() FROM " + db + ".t"), wantStatus: 200, wantBody: "9\n"},
		{
			name: "insert without data", params: query("INSERT INTO " + db + ".t FORMAT TSV"), body: "", wantStatus: 500,
			wantHeader: map[string]string{"X-ClickHouse-Exception-Code": "108"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" || tc.params.Has("query") && strings.HasPrefix(tc.params.Get("query"), "INSERT") {
				body = strings.NewReader(tc.body)
			}
			resp := do(t, tc.params, body, nil)
			if tc.wantStatus != 0 && resp.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus == 0 && resp.status == 200 {
				t.Fatalf("status = 200, want an error; body %q", resp.body)
			}
			if !strings.HasPrefix(resp.body, tc.wantBody) {
				t.Fatalf("body = %q, want prefix %q", resp.body, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := resp.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if resp.header.Get("X-ClickHouse-Query-Id") == "" || resp.header.Get("X-ClickHouse-Server-Display-Name") == "" {
				t.Errorf("missing query id or display name headers: %v", resp.header)
			}
			if resp.status != 200 {
				if !strings.Contains(resp.body, "(version "+testEngine.Version()+")") {
					t.Errorf("exception body %q lacks the version suffix", resp.body)
				}
				if resp.header.Get("X-ClickHouse-Exception-Code") == "" {
					t.Errorf("error without X-ClickHouse-Exception-Code")
				}
			} else if resp.header.Get("X-ClickHouse-Summary") == "" {
				t.Errorf("missing X-ClickHouse-Summary")
			}
		})
	}
}

func TestInsertSummary(t *testing.T) {
	db := newDatabase(t)
	if err := testEngine.Exec(context.Background(), "CREATE TABLE "+db+".t (a UInt32) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	resp := do(t, query("INSERT INTO "+db+".t FORMAT TSV"), strings.NewReader("1\n2\n3\n"), nil)
	if resp.status != 200 || !strings.Contains(resp.header.Get("X-ClickHouse-Summary"), `"written_rows":"3"`) {
		t.Fatalf("status %d summary %q, want written_rows 3", resp.status, resp.header.Get("X-ClickHouse-Summary"))
	}
	resp = do(t, query("SELECT a FROM "+db+".t ORDER BY a", "wait_end_of_query", "1"), nil, nil)
	if resp.body != "1\n2\n3\n" || !strings.Contains(resp.header.Get("X-ClickHouse-Summary"), `"result_rows":"3"`) {
		t.Fatalf("body %q summary %q, want result_rows 3", resp.body, resp.header.Get("X-ClickHouse-Summary"))
	}
}

func TestPing(t *testing.T) {
	for _, path := range []string{"/ping", "/", "/replicas_status"} {
		resp, err := http.Get("http://" + testServer.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "Ok.\n" {
			t.Fatalf("GET %s = %d %q, want 200 \"Ok.\\n\"", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get("http://" + testServer.Addr() + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /nope = %d, want 404", resp.StatusCode)
	}
}

func TestRequestSizeLimit(t *testing.T) {
	over := chlocal.DefaultMaxRequestBytes + 1
	tests := []struct {
		name string
		body io.Reader
	}{
		// Content-Length known: refused before reading.
		{name: "content-length", body: bytes.NewReader(make([]byte, over))},
		// Chunked: refused while reading.
		{name: "chunked", body: struct{ io.Reader }{io.LimitReader(zeros{}, over)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, query("INSERT INTO system.one FORMAT RowBinary"), tc.body, nil)
			if resp.status != http.StatusRequestEntityTooLarge || resp.header.Get("X-ClickHouse-Exception-Code") != "229" {
				t.Fatalf("status %d code %q body %q, want 413 / 229", resp.status, resp.header.Get("X-ClickHouse-Exception-Code"), resp.body)
			}
		})
	}
	// The engine still serves.
	if resp := do(t, query("SELECT 1"), nil, nil); resp.body != "1\n" {
		t.Fatalf("after oversize: %d %q", resp.status, resp.body)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestHTTPCompression(t *testing.T) {
	db := newDatabase(t)
	if err := testEngine.Exec(context.Background(), "CREATE TABLE "+db+".t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	rows := strings.Repeat("1\tcompressed\n", 1000)

	t.Run("gzip request body", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = io.WriteString(zw, rows)
		_ = zw.Close()
		resp := do(t, query("INSERT INTO "+db+".t FORMAT TSV"), &buf, http.Header{"Content-Encoding": {"gzip"}})
		if resp.status != 200 {
			t.Fatalf("gzip insert: %d %q", resp.status, resp.body)
		}
		if c := do(t, query("SELECT count() FROM "+db+".t"), nil, nil); c.body != "1000\n" {
			t.Fatalf("count after gzip insert = %q, want 1000", c.body)
		}
	})
	t.Run("gzip response", func(t *testing.T) {
		resp := do(t, query("SELECT s FROM "+db+".t", "enable_http_compression", "1"), nil, http.Header{"Accept-Encoding": {"gzip"}})
		if resp.status != 200 || resp.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("status %d Content-Encoding %q", resp.status, resp.header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(strings.NewReader(resp.body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil || string(b) != strings.Repeat("compressed\n", 1000) {
			t.Fatalf("gunzip = %d bytes, %v", len(b), err)
		}
	})
	t.Run("no gzip without enable_http_compression", func(t *testing.T) {
		resp := do(t, query("SELECT 1"), nil, http.Header{"Accept-Encoding": {"gzip"}})
		if resp.header.Get("Content-Encoding") != "" || resp.body != "1\n" {
			t.Fatalf("Content-Encoding %q body %q", resp.header.Get("Content-Encoding"), resp.body)
		}
	})
	for _, m := range []struct {
		name   string
		method compress.Method
	}{{"LZ4", compress.LZ4}, {"ZSTD", compress.ZSTD}} {
		t.Run("framed "+m.name+" both ways", func(t *testing.T) {
			w := compress.NewWriter(compress.LevelZero, m.method)
			if err := w.Compress([]byte(strings.Repeat("2\tframed\n", 500))); err != nil {
				t.Fatal(err)
			}
			resp := do(t, query("INSERT INTO "+db+".t FORMAT TSV", "decompress", "1"), bytes.NewReader(w.Data), nil)
			if resp.status != 200 {
				t.Fatalf("framed insert: %d %q", resp.status, resp.body)
			}
			resp = do(t, query("SELECT count() FROM "+db+".t WHERE a = 2", "compress", "1", "network_compression_method", m.name), nil, nil)
			if resp.status != 200 {
				t.Fatalf("framed select: %d %q", resp.status, resp.body)
			}
			b, err := io.ReadAll(compress.NewReader(strings.NewReader(resp.body)))
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("decompress response: %v", err)
			}
			if string(b) != "500\n" {
				t.Fatalf("framed response = %q, want 500 (one insert per method: the count grows by 500)", b)
			}
			if err := testEngine.Exec(context.Background(), "TRUNCATE TABLE "+db+".t"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClickHouseGoCompression runs batches and typed scans through
// clickhouse-go with each compression it offers over HTTP.
func TestClickHouseGoCompression(t *testing.T) {
	tests := []struct {
		name     string
		method   clickhouse.CompressionMethod
		settings clickhouse.Settings
	}{
		{name: "lz4", method: clickhouse.CompressionLZ4},
		{name: "zstd", method: clickhouse.CompressionZSTD},
		{name: "gzip", method: clickhouse.CompressionGZIP, settings: clickhouse.Settings{"enable_http_compression": 1}},
		{name: "deflate", method: clickhouse.CompressionDeflate, settings: clickhouse.Settings{"enable_http_compression": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDatabase(t)
			conn := connect(t, testServer.Addr(), db, func(o *clickhouse.Options) {
				o.Compression = &clickhouse.Compression{Method: tc.method}
				o.Settings = tc.settings
			})
			ctx := context.Background()
			if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = MergeTree ORDER BY id"); err != nil {
				t.Fatalf("create: %v", err)
			}
			insertEvents(t, conn, "events", 0, 20_000)
			if got := countRows(t, conn, "SELECT count() FROM events"); got != 20_000 {
				t.Fatalf("count() = %d, want 20000", got)
			}
			r, err := conn.Query(ctx, "SELECT id, ts, local_ts, tokyo_ts, kind, attrs, tags, note, uid, ver FROM events ORDER BY id")
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			defer r.Close()
			i := 0
			for ; r.Next(); i++ {
				var got event
				if err := r.Scan(&got.ID, &got.TS, &got.LocalTS, &got.TokyoTS, &got.Kind, &got.Attrs, &got.Tags, &got.Note, &got.UID, &got.Ver); err != nil {
					t.Fatalf("scan %d: %v", i, err)
				}
				if err := sameEvent(makeEvent(i), got); err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
			}
			if err := r.Err(); err != nil || i != 20_000 {
				t.Fatalf("scanned %d rows, err %v", i, err)
			}
			var ex *clickhouse.Exception
			if err := conn.Exec(ctx, "SELEC 1"); !errors.As(err, &ex) || ex.Code != 62 {
				t.Fatalf("syntax error over %s = %v, want code 62", tc.name, err)
			}
		})
	}
}

func TestOpenLibraryErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.so")
	if err := os.WriteFile(garbage, []byte("this is not a shared library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeELF := filepath.Join(dir, "truncated.so")
	if err := os.WriteFile(fakeELF, append([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00"), make([]byte, 100)...), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		libPath string
		wantErr error
	}{
		{name: "missing", libPath: filepath.Join(dir, "nope", "libchdb.so"), wantErr: chlocal.ErrLibraryNotFound},
		{name: "garbage", libPath: garbage, wantErr: chlocal.ErrLibraryInvalid},
		{name: "truncated ELF", libPath: fakeELF, wantErr: chlocal.ErrLibraryInvalid},
		{name: "directory", libPath: dir, wantErr: chlocal.ErrLibraryInvalid},
		{name: "second engine", libPath: "", wantErr: chlocal.ErrEngineOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := chlocal.Open(context.Background(), chlocal.Config{LibPath: tc.libPath, DataDir: t.TempDir()})
			if e != nil {
				_ = e.Close(context.Background())
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open(LibPath %q) = %v, want %v", tc.libPath, err, tc.wantErr)
			}
			if tc.wantErr != chlocal.ErrEngineOpen && (!strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "--clickhouse clickhouse://")) {
				t.Fatalf("error %q does not say how to get the library", err)
			}
		})
	}
}

// TestMetrics checks that requests are counted by kind and result.
func TestMetrics(t *testing.T) {
	m := testEngine.Metrics()
	before := counterValue(t, m, "query", "error")
	do(t, query("SELEC 1"), nil, nil)
	if got := counterValue(t, m, "query", "error"); got != before+1 {
		t.Fatalf("requests{query,error} = %v, want %v", got, before+1)
	}
}

func counterValue(t *testing.T, m *chlocal.Metrics, kind, result string) float64 {
	t.Helper()
	c, err := m.Requests.GetMetricWithLabelValues(kind, result)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.ToFloat64(c)
}

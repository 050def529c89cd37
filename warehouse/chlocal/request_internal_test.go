package chlocal

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseStatement(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		wantKind   stmtKind
		wantSQL    string
		wantFormat string
		wantData   string
		wantErr    int32 // exception code, 0 for none
	}{
		{name: "select", text: "SELECT 1", wantKind: kindRead, wantSQL: "SELECT 1"},
		{name: "select format", text: "SELECT 1 FORMAT JSON", wantKind: kindRead, wantSQL: "SELECT 1 FORMAT JSON", wantFormat: "JSON"},
		{name: "format then settings", text: "SELECT 1 FORMAT Native SETTINGS max_threads=1", wantKind: kindRead, wantSQL: "SELECT 1 FORMAT Native SETTINGS max_threads=1", wantFormat: "Native"},
		{name: "column named format", text: "SELECT format FROM t", wantKind: kindRead, wantSQL: "SELECT format FROM t"},
		{name: "format function", text: "SELECT format('{}', 1)", wantKind: kindRead, wantSQL: "SELECT format('{}', 1)"},
		{name: "format in subquery", text: "SELECT * FROM (SELECT 1 FORMAT JSON)", wantKind: kindRead, wantSQL: "SELECT * FROM (SELECT 1 FORMAT JSON)"},
		{name: "parenthesised select", text: "(SELECT 1) UNION ALL (SELECT 2)", wantKind: kindRead, wantSQL: "(SELECT 1) UNION ALL (SELECT 2)"},
		{name: "trailing semicolon", text: "SELECT 1;  -- done\n", wantKind: kindRead, wantSQL: "SELECT 1"},
		{name: "semicolon in string", text: "SELECT ';' , \"a;b\", `c;d`", wantKind: kindRead, wantSQL: "SELECT ';' , \"a;b\", `c;d`"},
		{name: "semicolon in comment", text: "SELECT 1 /* ; */ -- ;\n", wantKind: kindRead, wantSQL: "SELECT 1 /* ; */ -- ;"},
		{name: "escaped quote", text: `SELECT 'it\'s; fine', 'it''s; fine'`, wantKind: kindRead, wantSQL: `SELECT 'it\'s; fine', 'it''s; fine'`},
		{name: "heredoc", text: "SELECT $$a;b$$", wantKind: kindRead, wantSQL: "SELECT $$a;b$$"},
		{name: "multi", text: "SELECT 1; SELECT 2", wantErr: codeSyntaxError},
		{name: "multi after comment", text: "SELECT 1; /* x */ DROP TABLE t", wantErr: codeSyntaxError},
		{name: "empty", text: "  -- nothing\n", wantErr: codeSyntaxError},
		{name: "insert format", text: "INSERT INTO t (a, b) FORMAT Native\n\x00\x01\n\nbinary;DROP", wantKind: kindInsert, wantSQL: "INSERT INTO t (a, b)", wantFormat: "Native", wantData: "\x00\x01\n\nbinary;DROP"},
		{name: "insert format crlf", text: "INSERT INTO t FORMAT CSV \r\n1,2\n", wantKind: kindInsert, wantSQL: "INSERT INTO t", wantFormat: "CSV", wantData: "1,2\n"},
		{name: "insert format quoted name", text: "INSERT INTO `my t` FORMAT `TSV`\n1\n", wantKind: kindInsert, wantSQL: "INSERT INTO `my t`", wantFormat: "TSV", wantData: "1\n"},
		{name: "insert settings format", text: "INSERT INTO t SETTINGS async_insert=0 FORMAT TSV\n1\n", wantKind: kindInsert, wantSQL: "INSERT INTO t SETTINGS async_insert=0", wantFormat: "TSV", wantData: "1\n"},
		{name: "insert function", text: "INSERT INTO FUNCTION file('x.csv', 'CSV') FORMAT CSV\n1\n", wantKind: kindInsert, wantSQL: "INSERT INTO FUNCTION file('x.csv', 'CSV')", wantFormat: "CSV", wantData: "1\n"},
		{name: "insert values", text: "INSERT INTO t VALUES (1, 'a;b'), (2, 'c')", wantKind: kindInsert, wantSQL: "INSERT INTO t", wantFormat: "Values", wantData: " (1, 'a;b'), (2, 'c')"},
		{name: "insert values trailing semicolon", text: "INSERT INTO t VALUES (1);", wantKind: kindInsert, wantSQL: "INSERT INTO t", wantFormat: "Values", wantData: " (1)"},
		{name: "insert values then statement", text: "INSERT INTO t VALUES (1); DROP TABLE t", wantErr: codeSyntaxError},
		{name: "insert select", text: "INSERT INTO t SELECT * FROM values('a UInt8', 1)", wantKind: kindInsert, wantSQL: "INSERT INTO t SELECT * FROM values('a UInt8', 1)"},
		{name: "insert select format column", text: "INSERT INTO t SELECT format FROM s", wantKind: kindInsert, wantSQL: "INSERT INTO t SELECT format FROM s"},
		{name: "insert select multi", text: "INSERT INTO t SELECT 1; DROP TABLE t", wantErr: codeSyntaxError},
		{name: "create", text: "CREATE TABLE t (a UInt8) ENGINE = Memory", wantKind: kindWrite, wantSQL: "CREATE TABLE t (a UInt8) ENGINE = Memory"},
		{name: "set", text: "SET max_threads = 1", wantKind: kindSet, wantSQL: "SET max_threads = 1"},
		{name: "use", text: "use db", wantKind: kindUse, wantSQL: "use db"},
		{name: "unknown keyword", text: "SELEC 1", wantKind: kindOther, wantSQL: "SELEC 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStatement([]byte(tc.text))
			if tc.wantErr != 0 {
				var x *Exception
				if !errors.As(err, &x) || x.Code != tc.wantErr {
					t.Fatalf("parseStatement(%q) error = %v, want code %d", tc.text, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStatement(%q) = %v", tc.text, err)
			}
			if st.Kind != tc.wantKind || st.SQL != tc.wantSQL || st.Format != tc.wantFormat || string(st.Data) != tc.wantData {
				t.Fatalf("parseStatement(%q) = {kind %d, sql %q, format %q, data %q}, want {%d, %q, %q, %q}",
					tc.text, st.Kind, st.SQL, st.Format, st.Data, tc.wantKind, tc.wantSQL, tc.wantFormat, tc.wantData)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name         string
		rawQuery     string
		method       string
		body         string
		wantSQL      string
		wantFormat   string
		wantData     string
		wantSettings []setting
		wantDB       string
		wantErr      int32
	}{
		{
			name: "clickhouse-go select", rawQuery: "client_protocol_version=54460&database=d&default_format=Native&max_execution_time=5",
			method: "POST", body: "SELECT 1", wantSQL: "SELECT 1", wantFormat: "Native", wantDB: "d",
			wantSettings: []setting{{"max_execution_time", "5"}},
		},
		{
			name: "clickhouse-go batch", rawQuery: "query=INSERT+INTO+t+%28a%29+FORMAT+Native&default_format=Native",
			method: "POST", body: "\x01\x02\n\nbin", wantSQL: "INSERT INTO t (a)", wantFormat: "Native", wantData: "\x01\x02\n\nbin", wantDB: "default",
		},
		{name: "GET select", rawQuery: "query=SELECT+version()", method: "GET", wantSQL: "SELECT version()", wantFormat: "TabSeparated", wantDB: "default"},
		{name: "GET insert is readonly", rawQuery: "query=INSERT+INTO+t+SELECT+1", method: "GET", wantErr: codeReadonly},
		{name: "readonly param", rawQuery: "query=DROP+TABLE+t&readonly=1", method: "POST", wantErr: codeReadonly},
		{name: "bad setting name", rawQuery: "query=SELECT+1&max%20threads=1", method: "GET", wantErr: codeUnknownSetting},
		{name: "bad protocol version", rawQuery: "query=SELECT+1&client_protocol_version=x", method: "GET", wantErr: codeBadArguments},
		{name: "query param and body", rawQuery: "query=SELECT", method: "POST", body: "1", wantSQL: "SELECT\n1", wantFormat: "TabSeparated", wantDB: "default"},
		{name: "values split across param and body", rawQuery: "query=INSERT+INTO+t+VALUES+(1)", method: "POST", body: "(2)", wantSQL: "INSERT INTO t", wantFormat: "TabSeparated", wantData: " (1)\n(2)", wantDB: "default"},
		{name: "multi in param", rawQuery: "query=SELECT+1%3BSELECT+2", method: "GET", wantErr: codeSyntaxError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, err := url.ParseQuery(tc.rawQuery)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseRequest(params, tc.method, []byte(tc.body))
			if tc.wantErr != 0 {
				var x *Exception
				if !errors.As(err, &x) || x.Code != tc.wantErr {
					t.Fatalf("parseRequest(%q) error = %v, want code %d", tc.rawQuery, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRequest(%q) = %v", tc.rawQuery, err)
			}
			if r.Stmt.SQL != tc.wantSQL || r.Format != tc.wantFormat || string(r.Stmt.Data) != tc.wantData || r.Database != tc.wantDB {
				t.Fatalf("parseRequest(%q) = {sql %q, format %q, data %q, db %q}, want {%q, %q, %q, %q}",
					tc.rawQuery, r.Stmt.SQL, r.Format, r.Stmt.Data, r.Database, tc.wantSQL, tc.wantFormat, tc.wantData, tc.wantDB)
			}
			if len(r.Settings) != len(tc.wantSettings) {
				t.Fatalf("settings = %v, want %v", r.Settings, tc.wantSettings)
			}
			for i := range r.Settings {
				if r.Settings[i] != tc.wantSettings[i] {
					t.Fatalf("settings = %v, want %v", r.Settings, tc.wantSettings)
				}
			}
		})
	}
}

// maxFuzzInput bounds fuzz inputs (Prometheus util/fuzzing keeps them small).
const maxFuzzInput = 1 << 16

// FuzzParseRequest checks properties of request parsing on arbitrary URL
// query strings and bodies: no panic; errors are exceptions with a code and
// an HTTP status; a statement never hides a second statement (re-parsing
// SQL+";" still yields one); INSERT data is a suffix of the input and
// settings have identifier names.
func FuzzParseRequest(f *testing.F) {
	seeds := []struct{ q, method, body string }{
		{"query=SELECT+1", "GET", ""},
		{"query=SELECT+version()&default_format=JSON", "GET", ""},
		{"client_protocol_version=54460&default_format=Native&database=d", "POST", "SELECT * FROM t FORMAT Native"},
		{"query=INSERT+INTO+t+FORMAT+Native", "POST", "\x02\x01\x01a\x06UInt8\x01\n\n"},
		{"", "POST", "INSERT INTO t VALUES (1, 'a;b'), (2, $$x$$)"},
		{"", "POST", "SELECT 1; SELECT 2"},
		{"", "POST", "INSERT INTO t FORMAT TSV\n1\n\nDROP TABLE t"},
		{"query=SELECT", "POST", "1 /* ; */ -- ;\n"},
		{"max_threads=2&param_x=1&readonly=1&query=SELECT+{x:UInt8}", "GET", ""},
		{"query=SELECT+'unterminated", "GET", ""},
		{"", "POST", "(SELECT `a;`) UNION ALL (SELECT \"b;\") FORMAT CSV SETTINGS a=1"},
	}
	for _, s := range seeds {
		f.Add(s.q, s.method, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, rawQuery, method string, body []byte) {
		if len(rawQuery)+len(body) > maxFuzzInput {
			return
		}
		params, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		r, err := parseRequest(params, method, body)
		if err != nil {
			var x *Exception
			if !errors.As(err, &x) || x.Code <= 0 || x.HTTPStatus() < 400 {
				t.Fatalf("error %v is not a ClickHouse exception", err)
			}
			return
		}
		for _, s := range r.Settings {
			if !settingNameRe.MatchString(s.Name) || reservedParams[s.Name] {
				t.Fatalf("setting %q passed through", s.Name)
			}
		}
		if r.Format == "" {
			t.Fatalf("no output format")
		}
		st := r.Stmt
		if st.HasData {
			if st.Kind != kindInsert {
				t.Fatalf("data on a non-INSERT statement")
			}
			q := params.Get("query")
			if !bytes.HasSuffix(body, st.Data) && !strings.HasSuffix(q+"\n"+string(body), string(st.Data)) {
				t.Fatalf("data %q is not a suffix of the input", st.Data)
			}
			return
		}
		// The statement alone is one statement: re-parsing it is stable.
		again, err := parseStatement([]byte(st.SQL))
		if err != nil || again.SQL != st.SQL || again.Kind != st.Kind {
			t.Fatalf("re-parse of %q = %+v, %v", st.SQL, again, err)
		}
		if utf8.ValidString(st.SQL) && strings.TrimSpace(st.SQL) == "" {
			t.Fatalf("empty statement accepted")
		}
	})
}

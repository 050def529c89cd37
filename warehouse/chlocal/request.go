package chlocal

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// request is an HTTP request to the ClickHouse interface, parsed from its URL
// parameters and body (already decompressed).
type request struct {
	Stmt     statement
	Database string
	// Format is the effective output format: FORMAT clause, else
	// default_format, else TabSeparated.
	Format          string
	Settings        []setting
	Params          []setting // param_<name> query parameters
	QueryID         string
	ProtocolVersion uint64 // client_protocol_version
	Compress        bool   // compress=1: frame the response
	Decompress      bool   // decompress=1: the body is framed
	Readonly        bool   // GET, or readonly=1/2
}

// reservedParams are URL parameters of the HTTP interface that are not
// settings (HTTPHandler.cpp).
var reservedParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "user": true,
	"password": true, "quota_key": true, "query_id": true, "session_id": true,
	"session_timeout": true, "session_check": true, "compress": true,
	"decompress": true, "buffer_size": true, "wait_end_of_query": true,
	"client_protocol_version": true, "stacktrace": true, "role": true,
	"readonly": true, "close_session": true,
}

var settingNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// defaultFormat is ClickHouse's default output format over HTTP.
const defaultFormat = "TabSeparated"

// parseRequest builds a request from URL parameters, the HTTP method and the
// (decompressed) body. The query is the query parameter followed by a line
// break and the body, as ClickHouse concatenates them; for an INSERT whose
// statement ends in the query parameter the body is pure data and is never
// copied or scanned. Errors are [*Exception]s.
func parseRequest(params url.Values, method string, body []byte) (*request, error) {
	r := &request{Database: params.Get("database"), QueryID: params.Get("query_id")}
	if r.Database == "" {
		r.Database = "default"
	}
	if v := params.Get("client_protocol_version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, newException(codeBadArguments, "Invalid client_protocol_version: %q", truncate(v, 32))
		}
		r.ProtocolVersion = n
	}
	r.Compress = params.Get("compress") == "1"
	r.Decompress = params.Get("decompress") == "1"
	ro := params.Get("readonly")
	r.Readonly = method == "GET" || method == "HEAD" || (ro != "" && ro != "0")
	for name, vs := range params {
		switch {
		case reservedParams[name] || len(vs) == 0:
			continue
		case strings.HasPrefix(name, "param_"):
			r.Params = append(r.Params, setting{Name: strings.TrimPrefix(name, "param_"), Value: vs[len(vs)-1]})
			continue
		case !settingNameRe.MatchString(name):
			return nil, newException(codeUnknownSetting, "Unknown setting '%s'", truncate(name, 64))
		}
		r.Settings = append(r.Settings, setting{Name: name, Value: vs[len(vs)-1]})
	}

	q := params.Get("query")
	var err error
	switch {
	case q != "" && len(body) == 0:
		r.Stmt, err = parseStatement([]byte(q))
	case q != "":
		r.Stmt, err = parseStatement([]byte(q))
		if err == nil && r.Stmt.Kind == kindInsert && r.Stmt.HasData {
			if len(r.Stmt.Data) > 0 {
				d := make([]byte, 0, len(r.Stmt.Data)+1+len(body))
				d = append(append(append(d, r.Stmt.Data...), '\n'), body...)
				r.Stmt.Data = d
			} else {
				r.Stmt.Data = body
			}
			break
		}
		text := make([]byte, 0, len(q)+1+len(body))
		text = append(append(append(text, q...), '\n'), body...)
		r.Stmt, err = parseStatement(text)
	default:
		r.Stmt, err = parseStatement(body)
	}
	if err != nil {
		return nil, err
	}
	if r.Readonly && (r.Stmt.Kind == kindInsert || r.Stmt.Kind == kindWrite || r.Stmt.Kind == kindUse) {
		return nil, newException(codeReadonly, "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries")
	}
	switch {
	case r.Stmt.Kind == kindRead && r.Stmt.Format != "":
		r.Format = r.Stmt.Format
	case params.Get("default_format") != "":
		r.Format = params.Get("default_format")
	default:
		r.Format = defaultFormat
	}
	return r, nil
}

package chlocal

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// ClickHouse error codes this package produces or maps (ErrorCodes.cpp).
const (
	codeCannotParseText      = 6
	codeThereIsNoColumn      = 8
	codeDuplicateColumn      = 15
	codeCannotParseEscape    = 25
	codeCannotParseQuoted    = 26
	codeCannotParseAssertion = 27
	codeBadArguments         = 36
	codeUnknownElementInAST  = 37
	codeCannotParseDate      = 38
	codeCannotParseDateTime  = 41
	codeIllegalColumn        = 44
	codeUnknownFunction      = 46
	codeUnknownIdentifier    = 47
	codeNotImplemented       = 48
	codeUnknownType          = 50
	codeTypeMismatch         = 53
	codeUnknownStorage       = 56
	codeUnknownTable         = 60
	codeSyntaxError          = 62
	codeUnknownAggregateFunc = 63
	codeCannotParseNumber    = 72
	codeUnknownFormat        = 73
	codeCannotOpenFile       = 76
	codeUnknownTypeOfQuery   = 78
	codeUnknownDatabase      = 81
	codeUnknownCompression   = 89
	codeNoDataToInsert       = 108
	codeUnknownSetting       = 115
	codeIncorrectData        = 117
	codeUnknownTypeOfASTNode = 123
	codeUnknownDirectionSort = 152
	codeTimeoutExceeded      = 159
	codeReadonly             = 164
	codeTooDeepAST           = 167
	codeTooBigAST            = 168
	codeSocketTimeout        = 209
	codeUnexpectedASTStruct  = 223
	codeQueryIsTooLarge      = 229
	codeCannotDecompress     = 271
	codeValueOutOfRange      = 321
	codeUnknownDatabaseEng   = 336
	codeCannotParseUUID      = 376
	codeHTTPLengthRequired   = 381
	codeQueryWasCancelled    = 394
	codeCannotParseDomain    = 441
	codeCannotParseIPv4      = 675
	codeCannotParseIPv6      = 676
	codeCannotScheduleTask   = 439
	codeUnknownException     = 1002
)

// codeNames names the codes this package raises itself; chDB errors carry
// their own name in the text.
var codeNames = map[int32]string{
	codeBadArguments:       "BAD_ARGUMENTS",
	codeSyntaxError:        "SYNTAX_ERROR",
	codeNotImplemented:     "NOT_IMPLEMENTED",
	codeUnknownFormat:      "UNKNOWN_FORMAT",
	codeUnknownCompression: "UNKNOWN_COMPRESSION_METHOD",
	codeNoDataToInsert:     "NO_DATA_TO_INSERT",
	codeReadonly:           "READONLY",
	codeQueryIsTooLarge:    "QUERY_IS_TOO_LARGE",
	codeCannotDecompress:   "CANNOT_DECOMPRESS",
	codeQueryWasCancelled:  "QUERY_WAS_CANCELLED",
	codeUnknownException:   "UNKNOWN_EXCEPTION",
	codeTimeoutExceeded:    "TIMEOUT_EXCEEDED",
	codeIncorrectData:      "INCORRECT_DATA",
}

// Exception is a ClickHouse server error, as the engine reports it and as the
// HTTP interface renders it: "Code: 62. DB::Exception: … (SYNTAX_ERROR)".
type Exception struct {
	Code int32
	// Name is the symbolic code name, e.g. "SYNTAX_ERROR"; may be empty.
	Name string
	// Message is the text after "DB::Exception: ", without the code name.
	Message string
}

// Error renders the exception the way ClickHouse prints it (without the
// version suffix the HTTP interface adds).
func (x *Exception) Error() string {
	if x.Name != "" {
		return fmt.Sprintf("Code: %d. DB::Exception: %s. (%s)", x.Code, x.Message, x.Name)
	}
	return fmt.Sprintf("Code: %d. DB::Exception: %s", x.Code, x.Message)
}

// HTTPStatus maps the code to the HTTP status ClickHouse's HTTP handler uses
// (exceptionCodeToHTTPStatus in HTTPHandler.cpp).
func (x *Exception) HTTPStatus() int { return statusForCode(x.Code) }

func newException(code int32, format string, args ...any) *Exception {
	return &Exception{Code: code, Name: codeNames[code], Message: fmt.Sprintf(format, args...)}
}

var exceptionRe = regexp.MustCompile(`^Code: (\d+)\. (?:[A-Za-z_:]+Exception: )?`)

var exceptionNameRe = regexp.MustCompile(`\. \(([A-Z][A-Z0-9_]+)\)$`)

// exception parses chDB's error text into an Exception. chDB nests some
// errors ("Code: 108. DB::Exception: Code: 108. DB::Exception: …"): the
// innermost text is kept.
func (e *Engine) exception(msg string) *Exception {
	return parseException(msg)
}

func parseException(msg string) *Exception {
	msg = strings.TrimSpace(msg)
	x := &Exception{Code: codeUnknownException, Name: "UNKNOWN_EXCEPTION", Message: msg}
	m := exceptionRe.FindStringSubmatch(msg)
	if m == nil {
		return x
	}
	if c, err := strconv.ParseInt(m[1], 10, 32); err == nil {
		x.Code = int32(c)
		x.Name = codeNames[x.Code]
	}
	rest := msg[len(m[0]):]
	if n := exceptionNameRe.FindStringSubmatch(rest); n != nil {
		x.Name = n[1]
		rest = strings.TrimSuffix(rest, n[0])
	}
	// Unwrap "Code: N. DB::Exception: <inner> (version …)" nesting.
	if inner := exceptionRe.FindString(rest); inner != "" {
		in := parseException(versionSuffixRe.ReplaceAllString(rest, ""))
		if in.Code == x.Code {
			return in
		}
	}
	x.Message = rest
	return x
}

var versionSuffixRe = regexp.MustCompile(` \(version [^()]*(?:\([^()]*\))?[^()]*\)$`)

// statusForCode mirrors ClickHouse's exceptionCodeToHTTPStatus
// (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); everything else is 500.
func statusForCode(code int32) int {
	switch code {
	case codeCannotParseText, codeCannotParseEscape, codeCannotParseQuoted,
		codeCannotParseDate, codeCannotParseDateTime, codeCannotParseNumber,
		codeCannotParseDomain, codeCannotParseIPv4, codeCannotParseIPv6,
		codeCannotParseAssertion, codeCannotParseUUID, codeDuplicateColumn,
		codeIllegalColumn, codeUnknownElementInAST, codeUnknownTypeOfASTNode,
		codeThereIsNoColumn, codeTooDeepAST, codeTooBigAST, codeUnexpectedASTStruct,
		codeSyntaxError, codeIncorrectData, codeTypeMismatch, codeValueOutOfRange,
		codeBadArguments:
		return http.StatusBadRequest
	case codeUnknownTable, codeUnknownFunction, codeUnknownIdentifier, codeUnknownType,
		codeUnknownStorage, codeUnknownDatabase, codeUnknownSetting,
		codeUnknownDirectionSort, codeUnknownAggregateFunc, codeUnknownFormat,
		codeUnknownDatabaseEng, codeUnknownTypeOfQuery:
		return http.StatusNotFound
	case codeQueryIsTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeNotImplemented:
		return http.StatusNotImplemented
	case codeSocketTimeout, codeCannotOpenFile, codeCannotScheduleTask:
		return http.StatusServiceUnavailable
	case codeHTTPLengthRequired:
		return http.StatusLengthRequired
	case codeTimeoutExceeded:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

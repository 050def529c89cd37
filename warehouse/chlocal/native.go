package chlocal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Native protocol revisions that change the block layout.
const (
	// revisionBlockInfo: blocks start with BlockInfo (any revision > 0).
	revisionBlockInfo = 1
	// revisionCustomSerialization: each column header carries a
	// has-custom-serialization byte (DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION).
	revisionCustomSerialization = 54454
)

// blockInfo is an encoded default BlockInfo: field 1 is_overflows=false,
// field 2 bucket_num=-1, end marker.
var blockInfo = []byte{1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0}

// errNativeShort means a Native stream ended inside a block.
var errNativeShort = errors.New("native block truncated")

// reframeNative rewrites chDB's Native output (protocol revision 0) for a
// client that asked for client_protocol_version=revision: it adds the block
// info and the per-column custom-serialization byte, walking each column by
// its type to find where its data ends (values are copied, never decoded).
// types, when not nil, replaces column type names by position (declared
// types whose DateTime time zone chDB dropped).
func reframeNative(src []byte, revision uint64, types []string) ([]byte, error) {
	if revision == 0 && types == nil {
		return src, nil
	}
	dst := make([]byte, 0, len(src)+len(src)/64+64)
	w := nativeWalker{b: src}
	for w.p < len(src) {
		if revision >= revisionBlockInfo {
			dst = append(dst, blockInfo...)
		}
		start := w.p
		ncols, err := w.uvarint()
		if err != nil {
			return nil, err
		}
		nrows, err := w.uvarint()
		if err != nil {
			return nil, err
		}
		dst = append(dst, src[start:w.p]...)
		for i := uint64(0); i < ncols; i++ {
			nameStart := w.p
			if _, err := w.str(); err != nil {
				return nil, err
			}
			dst = append(dst, src[nameStart:w.p]...)
			typ, err := w.str()
			if err != nil {
				return nil, err
			}
			if i < uint64(len(types)) && sameButZone(typ, types[i]) {
				typ = types[i]
			}
			dst = binary.AppendUvarint(dst, uint64(len(typ)))
			dst = append(dst, typ...)
			if revision >= revisionCustomSerialization {
				dst = append(dst, 0)
			}
			dataStart := w.p
			if nrows > 0 {
				t, err := parseType(typ)
				if err != nil {
					return nil, err
				}
				if err := w.prefix(t); err != nil {
					return nil, fmt.Errorf("column %d (%s): %w", i, typ, err)
				}
				if err := w.data(t, nrows); err != nil {
					return nil, fmt.Errorf("column %d (%s): %w", i, typ, err)
				}
			}
			dst = append(dst, src[dataStart:w.p]...)
		}
	}
	return dst, nil
}

var zoneRe = regexp.MustCompile(`DateTime(64)?\((\d+, )?'[^']*'\)`)

// sameButZone reports whether declared differs from got only by DateTime
// time zones that got lacks.
func sameButZone(got, declared string) bool {
	if got == declared || declared == "" {
		return false
	}
	strip := func(s string) string {
		return zoneRe.ReplaceAllStringFunc(s, func(m string) string {
			if strings.HasPrefix(m, "DateTime64(") {
				p, _, _ := strings.Cut(m[len("DateTime64("):], ",")
				return "DateTime64(" + p + ")"
			}
			return "DateTime"
		})
	}
	return strip(declared) == strip(got)
}

var zonelessRe = regexp.MustCompile(`DateTime(?:[^6(]|$)|DateTime64\(\d+\)`)

// lacksZone reports whether a type name has a DateTime without time zone:
// chDB drops the zone of a top-level DateTime('Zone') in Native at revision 0.
func lacksZone(typ string) bool { return zonelessRe.MatchString(typ) }

// colType is a parsed ClickHouse type name.
type colType struct {
	name string
	args []string // raw arguments, split at top-level commas
}

// parseType splits "Name(arg, arg…)" without interpreting the arguments.
func parseType(s string) (colType, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return colType{name: s}, nil
	}
	if !strings.HasSuffix(s, ")") {
		return colType{}, fmt.Errorf("malformed type %q", s)
	}
	t := colType{name: s[:open]}
	inner := s[open+1 : len(s)-1]
	depth, start := 0, 0
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; c {
		case '\'', '`', '"':
			// Skip a quoted run (enum names, time zones, field names).
			for i++; i < len(inner) && inner[i] != c; i++ {
				if inner[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				t.args = append(t.args, strings.TrimSpace(inner[start:i]))
				start = i + 1
			}
		}
	}
	t.args = append(t.args, strings.TrimSpace(inner[start:]))
	return t, nil
}

// arg parses argument i as a type, dropping a tuple element name
// ("a UInt8" → UInt8).
func (t colType) arg(i int) (colType, error) {
	if i >= len(t.args) {
		return colType{}, fmt.Errorf("type %s needs %d arguments", t.name, i+1)
	}
	a := t.args[i]
	if sp := strings.IndexAny(a, " \t"); sp > 0 && !strings.ContainsAny(a[:sp], "(,'") {
		a = strings.TrimSpace(a[sp+1:])
	}
	a = strings.Trim(a, "`")
	return parseType(a)
}

var fixedSizes = map[string]int{
	"Int8": 1, "UInt8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
	"Int16": 2, "UInt16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
	"Int32": 4, "UInt32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4,
	"Decimal32": 4, "Time": 4,
	"Int64": 8, "UInt64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
	"Int128": 16, "UInt128": 16, "Decimal128": 16, "UUID": 16, "IPv6": 16,
	"Int256": 32, "UInt256": 32, "Decimal256": 32,
}

// geoAliases expands the geo types to their storage types.
var geoAliases = map[string]string{
	"Point":           "Tuple(Float64, Float64)",
	"Ring":            "Array(Tuple(Float64, Float64))",
	"LineString":      "Array(Tuple(Float64, Float64))",
	"Polygon":         "Array(Array(Tuple(Float64, Float64)))",
	"MultiLineString": "Array(Array(Tuple(Float64, Float64)))",
	"MultiPolygon":    "Array(Array(Array(Tuple(Float64, Float64))))",
}

// nativeWalker walks Native column data without decoding values.
type nativeWalker struct {
	b []byte
	p int
}

func (w *nativeWalker) uvarint() (uint64, error) {
	v, n := binary.Uvarint(w.b[w.p:])
	if n <= 0 {
		return 0, errNativeShort
	}
	w.p += n
	return v, nil
}

func (w *nativeWalker) skip(n uint64) error {
	if n > uint64(len(w.b)-w.p) {
		return errNativeShort
	}
	w.p += int(n)
	return nil
}

func (w *nativeWalker) u64() (uint64, error) {
	if len(w.b)-w.p < 8 {
		return 0, errNativeShort
	}
	v := binary.LittleEndian.Uint64(w.b[w.p:])
	w.p += 8
	return v, nil
}

func (w *nativeWalker) str() (string, error) {
	n, err := w.uvarint()
	if err != nil {
		return "", err
	}
	start := w.p
	if err := w.skip(n); err != nil {
		return "", err
	}
	return string(w.b[start:w.p]), nil
}

// fixedSize returns the per-value size of a fixed-width type, or 0.
func fixedSize(t colType) (int, error) {
	if n, ok := fixedSizes[t.name]; ok {
		return n, nil
	}
	switch {
	case t.name == "FixedString":
		if len(t.args) != 1 {
			return 0, fmt.Errorf("malformed FixedString")
		}
		n, err := strconv.Atoi(t.args[0])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("malformed FixedString(%s)", t.args[0])
		}
		return n, nil
	case t.name == "Decimal":
		if len(t.args) < 1 {
			return 0, fmt.Errorf("malformed Decimal")
		}
		p, err := strconv.Atoi(t.args[0])
		if err != nil {
			return 0, fmt.Errorf("malformed Decimal(%s)", t.args[0])
		}
		switch {
		case p <= 9:
			return 4, nil
		case p <= 18:
			return 8, nil
		case p <= 38:
			return 16, nil
		}
		return 32, nil
	case strings.HasPrefix(t.name, "Interval"):
		return 8, nil
	}
	return 0, nil
}

// prefix walks the serialization state prefix of t (written once per column
// before its data): LowCardinality writes its key version there.
func (w *nativeWalker) prefix(t colType) error {
	if alias, ok := geoAliases[t.name]; ok {
		at, _ := parseType(alias)
		return w.prefix(at)
	}
	switch t.name {
	case "LowCardinality":
		_, err := w.u64()
		return err
	case "Array", "Nullable", "SimpleAggregateFunction":
		i := 0
		if t.name == "SimpleAggregateFunction" {
			i = 1
		}
		inner, err := t.arg(i)
		if err != nil {
			return err
		}
		return w.prefix(inner)
	case "Map", "Tuple", "Nested":
		for i := range t.args {
			inner, err := t.arg(i)
			if err != nil {
				return err
			}
			if err := w.prefix(inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// data walks rows values of type t.
func (w *nativeWalker) data(t colType, rows uint64) error {
	if n, err := fixedSize(t); err != nil {
		return err
	} else if n > 0 || t.name == "FixedString" {
		if rows > uint64(len(w.b)) { // overflow guard before multiplying
			return errNativeShort
		}
		return w.skip(rows * uint64(n))
	}
	if alias, ok := geoAliases[t.name]; ok {
		at, _ := parseType(alias)
		return w.data(at, rows)
	}
	switch t.name {
	case "String":
		for range rows {
			n, err := w.uvarint()
			if err != nil {
				return err
			}
			if err := w.skip(n); err != nil {
				return err
			}
		}
		return nil
	case "Nullable":
		if err := w.skip(rows); err != nil {
			return err
		}
		inner, err := t.arg(0)
		if err != nil {
			return err
		}
		return w.data(inner, rows)
	case "SimpleAggregateFunction":
		inner, err := t.arg(1)
		if err != nil {
			return err
		}
		return w.data(inner, rows)
	case "Array", "Map", "Nested":
		var total uint64
		for range rows {
			v, err := w.u64()
			if err != nil {
				return err
			}
			total = v
		}
		if t.name == "Array" {
			inner, err := t.arg(0)
			if err != nil {
				return err
			}
			return w.data(inner, total)
		}
		return w.tuple(t, total)
	case "Tuple":
		return w.tuple(t, rows)
	case "LowCardinality":
		return w.lowCardinality(t, rows)
	}
	return fmt.Errorf("type %s is not supported by the embedded ClickHouse's Native output", t.name)
}

func (w *nativeWalker) tuple(t colType, rows uint64) error {
	for i := range t.args {
		inner, err := t.arg(i)
		if err != nil {
			return err
		}
		if err := w.data(inner, rows); err != nil {
			return err
		}
	}
	return nil
}

// LowCardinality serialization flags (SerializationLowCardinality.cpp).
const (
	lcIndexTypeMask       = 0xff
	lcHasAdditionalKeys   = 1 << 9
	lcNeedGlobalDictonary = 1 << 8
)

func (w *nativeWalker) lowCardinality(t colType, rows uint64) error {
	inner, err := t.arg(0)
	if err != nil {
		return err
	}
	dict := inner
	if dict.name == "Nullable" { // the dictionary stores the nested type
		if dict, err = inner.arg(0); err != nil {
			return err
		}
	}
	for done := uint64(0); done < rows; {
		flags, err := w.u64()
		if err != nil {
			return err
		}
		if flags&lcNeedGlobalDictonary != 0 {
			return errors.New("LowCardinality global dictionary is not supported")
		}
		if flags&lcHasAdditionalKeys != 0 {
			nkeys, err := w.u64()
			if err != nil {
				return err
			}
			if err := w.data(dict, nkeys); err != nil {
				return err
			}
		}
		nidx, err := w.u64()
		if err != nil {
			return err
		}
		if nidx == 0 || nidx > rows-done {
			return fmt.Errorf("LowCardinality granule of %d rows, %d left", nidx, rows-done)
		}
		idxType := flags & lcIndexTypeMask
		if idxType > 3 {
			return fmt.Errorf("LowCardinality index type %d", idxType)
		}
		if err := w.skip(nidx << idxType); err != nil {
			return err
		}
		done += nidx
	}
	return nil
}

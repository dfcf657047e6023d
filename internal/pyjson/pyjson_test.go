package pyjson

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dumps is json.dumps(json.loads(in), ...) with the given options.
func dumps(t *testing.T, in string, opt Options) string {
	t.Helper()
	v, err := Decode([]byte(in))
	require.NoError(t, err)
	out, err := Marshal(v, opt)
	require.NoError(t, err)
	return string(out)
}

func TestPyFloat(t *testing.T) {
	// Python 3: repr(x) for each x, and json.dumps for the non-finite ones.
	for f, want := range map[float64]string{
		2: "2.0", 0.8098958333333334: "0.8098958333333334", 1e16: "1e+16", 1.5e-05: "1.5e-05",
		0.0001: "0.0001", -3.25: "-3.25", 123456789012345.0: "123456789012345.0", 1e100: "1e+100",
		math.Copysign(0, -1): "-0.0", math.Inf(1): "Infinity", math.Inf(-1): "-Infinity",
	} {
		require.Equal(t, want, pyFloat(f))
	}
	require.Equal(t, "NaN", pyFloat(math.NaN()))
}

// TestIndentASCII is the patch files' mode, json.dumps(obj, indent=2).
func TestIndentASCII(t *testing.T) {
	// The expected text is what Python 3 prints for
	// json.dumps({"s": "a\x01\x7f\U0001F600\u00e9\t\"\\/\b\f\r", "n": [], "o": {},
	// "f": [1e-05, 2.0, 1e16, 0.1], "b": [True, False, None]}, indent=2).
	want := `{
  "s": "a\u0001\u007f\ud83d\ude00\u00e9\t\"\\/\b\f\r",
  "n": [],
  "o": {},
  "f": [
    1e-05,
    2.0,
    1e+16,
    0.1
  ],
  "b": [
    true,
    false,
    null
  ]
}`
	opt := Options{Indent: 2, EnsureASCII: true}
	got, err := Marshal(Object{
		{Key: "s", Value: "a\x01\x7f\U0001F600\u00e9\t\"\\/\b\f\r"}, {Key: "n", Value: []any{}},
		{Key: "o", Value: map[string]any{}},
		{Key: "f", Value: []any{1e-05, 2.0, 1e16, 0.1}}, {Key: "b", Value: []any{true, false, nil}},
	}, opt)
	require.NoError(t, err)
	require.Equal(t, want, string(got))

	// Python 3: json.dumps(json.loads('{"k": [1, {"x": []}]}'), indent=4).
	require.Equal(t, "{\n    \"k\": [\n        1,\n        {\n            \"x\": []\n        }\n    ]\n}",
		dumps(t, `{"k":[1,{"x":[]}]}`, Options{Indent: 4}))
}

// TestOneLine is the chat template's mode, json.dumps(json.loads(s), ensure_ascii=False).
func TestOneLine(t *testing.T) {
	opt := Options{PythonNumbers: true, AllowNaN: true}
	// Python 3 prints {"b": 2, "a": [100.0, 0, {"z": "é\x7f"}]} (DEL unescaped): a repeated key
	// keeps its first position and last value.
	require.Equal(t, "{\"b\": 2, \"a\": [100.0, 0, {\"z\": \"\u00e9\x7f\"}]}",
		dumps(t, `{"b":1 , "a":[1e2,-0,{"z":"\u00e9\u007f"}],"b":2}`, opt))
	// Only quotes, backslashes and control characters are escaped; invalid UTF-8 becomes U+FFFD.
	got, err := Marshal([]any{"\"\\\n\x01\U0001F600", "a\xffb"}, opt)
	require.NoError(t, err)
	require.Equal(t, "[\"\\\"\\\\\\n\\u0001\U0001F600\", \"a\uFFFDb\"]", string(got))
}

// TestPythonNumbers checks Python's spelling of the int or float a literal parses to: integers
// unchanged (Python ints are unbounded), floats in repr with fixed notation for decimal
// exponents in [-4, 16), else scientific with a signed two-digit exponent; overflow is inf.
func TestPythonNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "42": "42", "123456789012345678901234567890": "123456789012345678901234567890",
		"1.0": "1.0", "1e2": "100.0", "1.5": "1.5", "0.0001": "0.0001", "1e-5": "1e-05",
		"1e16": "1e+16", "1234567890123456.0": "1234567890123456.0", "-0.0": "-0.0", "1e400": "Infinity",
		"-1e400": "-Infinity", "1e-400": "0.0", "2.5E-7": "2.5e-07",
	} {
		got, err := Marshal(json.Number(in), Options{PythonNumbers: true, AllowNaN: true})
		require.NoError(t, err, in)
		require.Equal(t, want, string(got), in)
		verbatim, err := Marshal(json.Number(in), Options{})
		require.NoError(t, err, in)
		require.Equal(t, in, string(verbatim), "without PythonNumbers the literal is kept")
	}
	_, err := Marshal(json.Number("1e400"), Options{PythonNumbers: true})
	require.ErrorContains(t, err, "not representable")
}

func TestMarshalErrors(t *testing.T) {
	for _, bad := range []string{"1x", "", "-", "01", "1.", ".5", "1e", "+1", "0x10"} {
		_, err := Marshal([]any{json.Number(bad)}, Options{})
		require.ErrorContains(t, err, "invalid number", "%q", bad)
	}
	_, err := Marshal(Object{{Key: "m", Value: Object{{Key: "x", Value: math.NaN()}}}}, Options{Indent: 2})
	require.EqualError(t, err, `pyjson: "m": "x": NaN is not representable in JSON`)
	got, err := Marshal([]any{math.Inf(1), math.Inf(-1), math.NaN()}, Options{AllowNaN: true})
	require.NoError(t, err)
	require.Equal(t, "[Infinity, -Infinity, NaN]", string(got), "Python 3: json.dumps([inf, -inf, nan])")
	_, err = Marshal(func() {}, Options{})
	require.Error(t, err, "a value encoding/json cannot describe")
}

// TestMarshalGoValues covers the Go types written directly and those routed through encoding/json.
func TestMarshalGoValues(t *testing.T) {
	type point struct {
		Y int    `json:"y"`
		X string `json:"x"`
	}
	got, err := Marshal(map[string]any{"b": int64(-7), "a": 3, "p": point{1, "é"}}, Options{EnsureASCII: true})
	require.NoError(t, err)
	require.Equal(t, `{"a": 3, "b": -7, "p": {"x": "\u00e9", "y": 1}}`, string(got),
		"map keys sorted; a struct becomes a map, so its keys come out sorted too")
}

func TestDecode(t *testing.T) {
	v, err := Decode([]byte(` {"z": [1.50, "s", true, null], "a": {}} `))
	require.NoError(t, err)
	require.Equal(t, Object{
		{Key: "z", Value: []any{json.Number("1.50"), "s", true, nil}},
		{Key: "a", Value: Object{}},
	}, v, "key order and number spelling kept")

	for _, bad := range []string{``, `{`, `[1,`, `{"a" 1}`, `{} x`, `1 2`, `[1}`} {
		_, err := Decode([]byte(bad))
		require.ErrorContains(t, err, "pyjson: invalid JSON", "%q", bad)
	}
	deep := strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2)
	_, err = Decode([]byte(deep))
	require.ErrorContains(t, err, "nested deeper")
	ok := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	_, err = Decode([]byte(ok))
	require.NoError(t, err)
}

func TestFromMap(t *testing.T) {
	m := map[string]any{"c": 1, "a": 2, "b": 3, "d": 4}
	require.Equal(t, Object{{Key: "d", Value: 4}, {Key: "b", Value: 3}, {Key: "a", Value: 2}, {Key: "c", Value: 1}},
		FromMap(m, []string{"d", "missing", "b", "d"}), "given order first, then the rest sorted")
	require.Equal(t, Object{}, FromMap(nil, nil))
}

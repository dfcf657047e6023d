package pyjson

import (
	"math"
	"strconv"
	"strings"
)

// pyFloat formats f as json.dumps does: Python's repr for finite values (shortest round-trip
// digits, fixed notation for decimal exponents in [-4, 16) with ".0" on integral values,
// otherwise d.ddde+XX), and Infinity, -Infinity or NaN.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// pyInt spells a JSON integer literal as Python prints the int it parses to: unchanged, but
// for -0, which is 0.
func pyInt(lit string) string {
	if lit == "-0" {
		return "0"
	}
	return lit
}

// isInteger reports whether a valid JSON number literal has no fraction or exponent.
func isInteger(lit string) bool { return !strings.ContainsAny(lit, ".eE") }

// isNumber reports whether s matches the JSON number grammar -?int(.frac)?([eE][+-]?exp)?.
func isNumber(s string) bool {
	digits := func(i int) int {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

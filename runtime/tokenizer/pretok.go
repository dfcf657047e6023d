package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The Qwen2 pre-tokenizer is a Split (behaviour "Isolated") on
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Go's regexp cannot express the look-ahead, so nextPiece implements the alternation by hand with
// leftmost-first semantics: at each position the first alternative that matches wins, and each
// alternative takes what its greedy, backtracking match would take. Every character is a letter,
// a number, white space or "other", so the alternatives cover all input and the pieces tile it.
//
// Character classes, as in the Hugging Face (Oniguruma) engine:
//   - \p{L}, \p{N}: Unicode general categories L and N (Go's unicode tables);
//   - \s: the Unicode White_Space property (U+0009-U+000D, U+0020, U+0085, U+00A0, U+1680,
//     U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000); U+200B and U+FEFF are not spaces;
//   - (?i:...) uses Unicode simple case folding, so "'S", "'LL" and "'ſ" (U+017F, which folds
//     to 's') are contractions too.

// charClass is the pre-tokenizer's view of one character.
type charClass uint8

const (
	classOther charClass = iota // neither letter, number nor white space
	classLetter
	classNumber
	classSpace
)

// classify returns the class of r; invalid UTF-8 (utf8.RuneError) counts as "other".
func classify(r rune) charClass {
	if r < utf8.RuneSelf {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			return classLetter
		case '0' <= r && r <= '9':
			return classNumber
		case r == ' ', '\t' <= r && r <= '\r':
			return classSpace
		}
		return classOther
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.Is(unicode.White_Space, r):
		return classSpace
	}
	return classOther
}

// isNewline reports whether r is in [\r\n].
func isNewline(r rune) bool { return r == '\r' || r == '\n' }

// foldASCII returns the lower-case ASCII letter r case-folds to, or 0.
func foldASCII(r rune) rune {
	switch {
	case 'a' <= r && r <= 'z':
		return r
	case 'A' <= r && r <= 'Z':
		return r + ('a' - 'A')
	case r == 'ſ': // U+017F LATIN SMALL LETTER LONG S folds to 's'
		return 's'
	}
	return 0
}

// contraction returns the byte length of a match of (?i:'s|'t|'re|'ve|'m|'ll|'d) at the start of
// s, or 0.
func contraction(s string) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	r1, n1 := utf8.DecodeRuneInString(s[1:])
	switch foldASCII(r1) {
	case 's', 't', 'm', 'd':
		return 1 + n1
	case 'r', 'v':
		return contraction3(s, n1, 'e')
	case 'l':
		return contraction3(s, n1, 'l')
	}
	return 0
}

// contraction3 matches the third character of 're, 've or 'll: n1 is the byte length of the
// second character and want the folded third one.
func contraction3(s string, n1 int, want rune) int {
	r2, n2 := utf8.DecodeRuneInString(s[1+n1:])
	if foldASCII(r2) == want {
		return 1 + n1 + n2
	}
	return 0
}

// nextPiece returns the byte length of the first pre-tokenizer piece of s (0 only for "").
func nextPiece(s string) int {
	if s == "" {
		return 0
	}
	if n := contraction(s); n > 0 {
		return n
	}
	r0, n0 := utf8.DecodeRuneInString(s)
	c0 := classify(r0)

	// [^\r\n\p{L}\p{N}]?\p{L}+
	start := -1
	switch {
	case c0 == classLetter:
		start = 0
	case c0 != classNumber && !isNewline(r0) && n0 < len(s):
		if r1, _ := utf8.DecodeRuneInString(s[n0:]); classify(r1) == classLetter {
			start = n0
		}
	}
	if start >= 0 {
		return start + spanClass(s[start:], classLetter)
	}

	// \p{N}
	if c0 == classNumber {
		return n0
	}

	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	i := -1
	switch {
	case c0 == classOther:
		i = 0
	case r0 == ' ' && n0 < len(s):
		if r1, _ := utf8.DecodeRuneInString(s[n0:]); classify(r1) == classOther {
			i = n0
		}
	}
	if i >= 0 {
		i += spanClass(s[i:], classOther)
		for i < len(s) && isNewline(rune(s[i])) {
			i++
		}
		return i
	}

	// Only white space is left: c0 == classSpace. Let [0, end) be the white-space run.
	end, lastNL := 0, -1
	for end < len(s) {
		r, n := utf8.DecodeRuneInString(s[end:])
		if classify(r) != classSpace {
			break
		}
		if isNewline(r) {
			lastNL = end
		}
		end += n
	}
	// \s*[\r\n]+ : the longest prefix of the run that ends in a newline.
	if lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S) : the whole run at the end of the text, else the run minus its last character.
	if end == len(s) {
		return end
	}
	_, nLast := utf8.DecodeLastRuneInString(s[:end])
	if end-nLast > 0 {
		return end - nLast
	}
	// \s+
	return end
}

// spanClass returns the byte length of the longest prefix of s whose characters are all of class c.
func spanClass(s string, c charClass) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if classify(r) != c {
			break
		}
		i += n
	}
	return i
}

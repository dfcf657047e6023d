package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Decoder turns a stream of token ids into text without ever emitting part of a UTF-8 character:
// bytes of an incomplete character are held back until the next token completes it. Invalid
// bytes become U+FFFD, one per maximal ill-formed subsequence (the WHATWG / Unicode §3.9
// practice, as a JavaScript TextDecoder does). A Decoder is not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	pending []byte // bytes not yet emitted: an incomplete character (at most 3 bytes)
}

// NewDecoder returns a streaming decoder. Control tokens render as their text.
func (t *Tokenizer) NewDecoder() *Decoder { return &Decoder{t: t} }

// Add consumes one id and returns the text that is now complete (possibly "").
func (d *Decoder) Add(id int32) string {
	d.pending = append(d.pending, d.t.piece(id)...)
	var sb strings.Builder
	d.pending = d.pending[:copy(d.pending, emitValid(&sb, d.pending, false))]
	return sb.String()
}

// Flush returns whatever is held back (an incomplete character becomes U+FFFD) and resets the
// decoder.
func (d *Decoder) Flush() string {
	var sb strings.Builder
	emitValid(&sb, d.pending, true)
	d.pending = d.pending[:0]
	return sb.String()
}

// emitValid writes the complete characters of b to sb, invalid sequences as U+FFFD, and returns
// the unconsumed tail: an incomplete but so far valid character, unless final is set.
func emitValid(sb *strings.Builder, b []byte, final bool) []byte {
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			sb.WriteByte(b[0])
			b = b[1:]
			continue
		}
		n, valid := prefixLen(b)
		switch {
		case valid:
			sb.Write(b[:n])
		case n == len(b) && !final:
			return b // a valid prefix cut short by the end of the data: wait for more
		default:
			sb.WriteRune(utf8.RuneError)
		}
		b = b[n:]
	}
	return b
}

// prefixLen inspects the non-ASCII sequence starting at b[0]. It returns the length of the
// character and valid=true, or the length of the maximal ill-formed subsequence (at least 1;
// when it reaches the end of b, the sequence may still be completed by more bytes).
func prefixLen(b []byte) (n int, valid bool) {
	c := b[0]
	var size int
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		size = 2
	case c >= 0xE0 && c <= 0xEF:
		size = 3
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F
		}
	case c >= 0xF0 && c <= 0xF4:
		size = 4
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1, false // a continuation byte or a byte that never starts a character
	}
	n = 1
	for ; n < size && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			return n, false
		}
		lo, hi = 0x80, 0xBF
	}
	return n, n == size
}

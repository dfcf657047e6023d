package tokenizer

// The GPT-2 byte-level alphabet (docs/FORMATS.md §9.1 step 4): every byte maps to one printable
// character so that BPE tokens are ordinary strings. Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF
// map to the code point of the same value; the other 68 bytes map, in increasing byte order, to
// U+0100 upward (so ' ' becomes 'Ġ' U+0120 and '\n' becomes 'Ċ' U+010A).

// byteToRune is the byte -> character table. (256,)
var byteToRune [256]rune

// runeToByte is the inverse table, indexed by code point up to U+0143; -1 where unused. (0x144,)
var runeToByte [0x144]int16

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	next := rune(0x100)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = next
			next++
		}
		runeToByte[byteToRune[b]] = int16(b)
	}
}

// byteLevelDecode maps a byte-level token string back to raw bytes. Characters outside the
// alphabet (never present in a well-formed vocabulary) are kept as their UTF-8 encoding.
func byteLevelDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= 0 && int(r) < len(runeToByte) && runeToByte[r] >= 0 {
			out = append(out, byte(runeToByte[r]))
			continue
		}
		out = append(out, string(r)...)
	}
	return out
}

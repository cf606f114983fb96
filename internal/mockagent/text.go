package mockagent

import (
	"strings"
	"unicode/utf8"

	acp "github.com/coder/acp-go-sdk"
)

// Keywords recognised in prompt text, see the package documentation.
const (
	KeywordPermission = "PERMISSION"
	KeywordWriteFile  = "WRITE_FILE"
	KeywordReadFile   = "READ_FILE"
	KeywordRun        = "RUN"
	KeywordSlow       = "SLOW"
	KeywordError      = "ERROR"
	KeywordExit       = "EXIT"
	KeywordFlood      = "FLOOD"
)

var keywords = []string{
	KeywordPermission, KeywordWriteFile, KeywordReadFile, KeywordRun,
	KeywordSlow, KeywordError, KeywordExit, KeywordFlood,
}

func isKeyword(tok string) bool {
	for _, k := range keywords {
		if tok == k {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// findKeyword returns the first whitespace-separated token of text that is a
// keyword, and the rest of its line with surrounding whitespace removed.
func findKeyword(text string) (kw, rest string) {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		i := 0
		for i < len(line) {
			for i < len(line) && isSpace(line[i]) {
				i++
			}
			j := i
			for j < len(line) && !isSpace(line[j]) {
				j++
			}
			if tok := line[i:j]; isKeyword(tok) {
				return tok, strings.TrimSpace(line[j:])
			}
			i = j
		}
	}
	return "", ""
}

// cutField splits s into its first whitespace-separated field and the rest,
// with leading whitespace removed from the rest.
func cutField(s string) (first, rest string) {
	s = strings.TrimLeft(s, " \t\r\v\f")
	i := strings.IndexFunc(s, func(r rune) bool { return r < utf8.RuneSelf && isSpace(byte(r)) })
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t\r\v\f")
}

// promptText concatenates the text content blocks of a prompt.
func promptText(blocks []acp.ContentBlock) string {
	var b strings.Builder
	for _, c := range blocks {
		if c.Text != nil {
			b.WriteString(c.Text.Text)
		}
	}
	return b.String()
}

const (
	minChunks = 3
	maxChunks = 32
)

// splitChunks splits a reply into streaming chunks whose concatenation is
// text: one chunk per word (each keeping its trailing whitespace), at least
// minChunks when text has that many runes, and at most maxChunks.
func splitChunks(text string) []string {
	var words []string
	start := 0
	for i := 1; i < len(text); i++ {
		if isWordEnd(text, i) {
			words = append(words, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		words = append(words, text[start:])
	}
	if len(words) < minChunks {
		return splitRunes(text, minChunks)
	}
	if len(words) <= maxChunks {
		return words
	}
	chunks := make([]string, 0, maxChunks)
	per, extra := len(words)/maxChunks, len(words)%maxChunks
	i := 0
	for c := range maxChunks {
		n := per
		if c < extra {
			n++
		}
		chunks = append(chunks, strings.Join(words[i:i+n], ""))
		i += n
	}
	return chunks
}

// isWordEnd reports whether a word ends before text[i]: text[i] starts a
// non-space after whitespace.
func isWordEnd(text string, i int) bool {
	return !isSpaceOrNewline(text[i]) && isSpaceOrNewline(text[i-1])
}

func isSpaceOrNewline(c byte) bool { return c == '\n' || isSpace(c) }

// splitRunes splits text into n pieces of about equal rune counts, or into
// single runes when it has fewer than n runes.
func splitRunes(text string, n int) []string {
	runes := []rune(text)
	if len(runes) == 0 {
		return nil
	}
	if len(runes) < n {
		n = len(runes)
	}
	out := make([]string, 0, n)
	per, extra := len(runes)/n, len(runes)%n
	i := 0
	for c := range n {
		k := per
		if c < extra {
			k++
		}
		out = append(out, string(runes[i:i+k]))
		i += k
	}
	return out
}

// truncate shortens s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

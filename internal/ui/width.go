package ui

import "github.com/rivo/uniseg"

// Width is the number of columns s takes on a terminal: a wide character (CJK, most emoji)
// takes two, a combining mark none.
func Width(s string) int { return uniseg.StringWidth(s) }

// Truncate returns the longest start of s that takes at most width columns on a terminal. It
// cuts between characters as a terminal shows them (grapheme clusters), never inside one, so
// a user name in UTF-8 is never split into an invalid byte sequence.
func Truncate(s string, width int) string {
	used, n := 0, 0
	state := -1
	rest := s
	for rest != "" {
		var cluster string
		var w int
		cluster, rest, w, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if used+w > width {
			break
		}
		used += w
		n += len(cluster)
	}
	return s[:n]
}

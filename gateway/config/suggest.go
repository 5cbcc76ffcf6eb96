package config

// closest returns the candidate nearest to name by edit distance, when it
// is near enough to be a likely misspelling, else "". Ties go to the
// earlier candidate.
func closest(name string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := editDistance(lower(name), lower(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	// A wrong case alone, or at most a third of the letters wrong.
	limit := (max(len(name), len(best)) + 2) / 3
	if bestD == 0 || bestD <= limit {
		return best
	}
	return ""
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Closest returns the candidate nearest to name when it is a likely
// misspelling of it, else "", for messages outside this package.
func Closest(name string, candidates []string) string { return closest(name, candidates) }

// IntentNames lists the intents configured for a skill, sorted.
func IntentNames(sk *Skill) []string { return sortedKeys(sk.Intents) }

// SlotNames lists the slots of an intent, sorted.
func SlotNames(in *Intent) []string { return sortedKeys(in.Slots) }

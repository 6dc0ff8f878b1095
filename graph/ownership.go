package graph

// isTrue reads an optional Boolean argument (absent or null: false).
func isTrue(b *bool) bool { return b != nil && *b }

package pulid

import (
	"sort"
	"testing"
)

func TestNewIsPrefixedAndOrdered(t *testing.T) {
	t.Parallel()
	ids := make([]string, 1000)
	for i := range ids {
		id := New("US")
		if len(id) != Len || id.Prefix() != "US" {
			t.Fatalf("malformed id %q", id)
		}
		ids[i] = string(id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids created in sequence must sort in creation order")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

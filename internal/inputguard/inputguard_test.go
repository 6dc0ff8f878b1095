package inputguard

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/gqlerr"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  map[string]any
		field string // "" means accepted
	}{
		{"plain", map[string]any{"input": map[string]any{"firstName": "Ann", "clearLastName": true}}, ""},
		{"clear false", map[string]any{"input": map[string]any{"firstName": "Ann", "clearFirstName": false}}, ""},
		{"set null", map[string]any{"input": map[string]any{"firstName": nil, "clearFirstName": true}}, ""},
		{"set and clear", map[string]any{"input": map[string]any{"firstName": "Ann", "clearFirstName": true}}, "firstName"},
		{"set and clear, non-string", map[string]any{"input": map[string]any{"userLimit": int64(3), "clearUserLimit": true}}, "userLimit"},
		{"NUL at top", map[string]any{"id": "US\x00"}, "id"},
		{"NUL deep", map[string]any{"where": map[string]any{"or": []any{map[string]any{"not": map[string]any{"nameIn": []any{"a", "b\x00"}}}}}}, "nameIn"},
		{"invalid UTF-8", map[string]any{"where": map[string]any{"name": "\xff"}}, "name"},
		{"key named clear alone", map[string]any{"input": map[string]any{"clear": true}}, ""},
	} {
		err := Check(c.args)
		if c.field == "" {
			require.NoError(t, err, c.name)
			continue
		}
		e := gqlerr.Translate(err)
		require.Equal(t, gqlerr.BadUserInput, e.Code, c.name)
		require.Equal(t, c.field, e.Field, c.name)
	}
}

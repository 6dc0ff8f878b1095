package gqlerr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/privacy"
	"github.com/dirsync/dirsync/ent/schema"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	unique := fmt.Errorf("ent: constraint failed: %w", &pq.Error{Code: "23505", Constraint: schema.UniqueUserEmail})
	cases := []struct {
		name  string
		err   error
		code  Code
		field string
	}{
		{"ours passes through", BadInput("x", "bad"), BadUserInput, "x"},
		{"wrapped ours", fmt.Errorf("ctx: %w", NotFoundf("id", "gone")), NotFound, "id"},
		{"unique violation names the field", unique, Conflict, "email"},
		{"unknown unique constraint", &pq.Error{Code: "23505", Constraint: "other"}, Conflict, ""},
		{"foreign key", &pq.Error{Code: "23503"}, NotFound, ""},
		{"privacy deny read-only", fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrReadOnly), Forbidden, ""},
		{"privacy deny no viewer", fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrNoViewer), Unauthenticated, ""},
		{"other privacy deny", privacy.Denyf("nope"), Forbidden, ""},
		{"unknown", errors.New("connection reset"), Internal, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Translate(c.err)
			require.Equal(t, c.code, got.Code)
			require.Equal(t, c.field, got.Field)
			require.Equal(t, got, Translate(got), "idempotent")
		})
	}
	require.Nil(t, Translate(nil))
	require.NotContains(t, Translate(errors.New("secret detail")).Message, "secret")
}

func TestTranslateEntErrors(t *testing.T) {
	t.Parallel()
	require.Equal(t, NotFound, Translate(fmt.Errorf("x: %w", &ent.NotFoundError{})).Code)
}

func TestGraphQLName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"username": "username", "first_name": "firstName", "employee_id": "employeeID",
		"usage_location": "usageLocation", "user_limit": "userLimit",
	} {
		require.Equal(t, want, GraphQLName(in))
	}
}

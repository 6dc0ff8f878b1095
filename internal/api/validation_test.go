package api_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
)

// Every invalid input answers BAD_USER_INPUT naming the field and changes nothing.
func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	valid := func(kv ...string) map[string]any {
		in := map[string]any{"username": "alice", "email": "alice@example.com"}
		for i := 0; i < len(kv); i += 2 {
			in[kv[i]] = kv[i+1]
		}
		return map[string]any{"in": in}
	}
	cases := []struct {
		name, field, value string
	}{
		{"empty username", "username", ""},
		{"username too long", "username", strings.Repeat("a", 65)},
		{"username starts with dot", "username", ".alice"},
		{"username starts with dash", "username", "-alice"},
		{"username with space", "username", "al ice"},
		{"username with @", "username", "alice@x"},
		{"username non-ASCII", "username", "älice"},
		{"empty email", "email", ""},
		{"email without @", "email", "alice.example.com"},
		{"email with display name", "email", "Alice <alice@example.com>"},
		{"email with angle brackets", "email", "<alice@example.com>"},
		{"email without dotted domain", "email", "alice@localhost"},
		{"email local part too long", "email", strings.Repeat("a", 65) + "@example.com"},
		{"email too long", "email", "a@" + strings.Repeat("b", 250) + ".com"},
		{"email with trailing dot domain", "email", "alice@example.com."},
		{"alternate email invalid", "alternateEmail", "not-an-email"},
		{"first name too long", "firstName", strings.Repeat("x", 65)},
		{"last name with control char", "lastName", "Smith\x07"},
		{"display name too long", "displayName", strings.Repeat("x", 257)},
		{"job title too long", "jobTitle", strings.Repeat("x", 129)},
		{"employee id too long", "employeeID", strings.Repeat("1", 17)},
		{"usage location lower case", "usageLocation", "de"},
		{"usage location three letters", "usageLocation", "DEU"},
		{"postal code too long", "postalCode", strings.Repeat("1", 41)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.fails(org.admin, createUser, valid(c.field, c.value), "BAD_USER_INPUT", c.field)
		})
	}
	require.Zero(t, e.userCount(org.admin), "a rejected input must not create anything")

	// Boundary values are accepted.
	e.must(org.admin, createUser, valid("username", strings.Repeat("a", 64), "email", strings.Repeat("b", 64)+"@example.com",
		"firstName", strings.Repeat("é", 64), "usageLocation", "DE", "alternateEmail", ""), nil)
	e.must(org.admin, createUser, valid("username", "9.a_b-c", "email", "x.y+tag@sub.example.co.uk"), nil)
	require.Equal(t, 2, e.userCount(org.admin))
}

func TestUpdateValidationChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	u := e.createUser(org.admin, "alice")
	const q = `mutation($id: ID!, $in: UpdateUserInput!) { updateUser(id: $id, input: $in) { user { id } } }`
	// The valid first name and the invalid email travel together: neither is stored.
	e.fails(org.admin, q, map[string]any{"id": u.ID, "in": map[string]any{"firstName": "Alice", "email": "bad"}}, "BAD_USER_INPUT", "email")
	var out struct {
		Node struct{ FirstName, Email string }
	}
	e.must(org.admin, `query($id: ID!) { node(id: $id) { ... on User { firstName email } } }`, map[string]any{"id": u.ID}, &out)
	require.Equal(t, "", out.Node.FirstName)
	require.Equal(t, "alice@example.com", out.Node.Email)

	// Group names: required, bounded.
	const cg = createGroup
	e.fails(org.admin, cg, map[string]any{"in": map[string]any{"name": ""}}, "BAD_USER_INPUT", "name")
	e.fails(org.admin, cg, map[string]any{"in": map[string]any{"name": "   "}}, "BAD_USER_INPUT", "name")
	e.fails(org.admin, cg, map[string]any{"in": map[string]any{"name": strings.Repeat("g", 257)}}, "BAD_USER_INPUT", "name")
	e.fails(org.admin, cg, map[string]any{"in": map[string]any{"name": "ok", "description": strings.Repeat("d", 1025)}}, "BAD_USER_INPUT", "description")
	e.must(org.admin, cg, map[string]any{"in": map[string]any{"name": "ok", "description": "two\nlines"}}, nil)

	// A malformed enum is refused before any resolver runs.
	r := e.post(org.admin, createUser, map[string]any{"in": map[string]any{"username": "bob", "email": "bob@example.com", "state": "DELETED"}})
	require.NotEmpty(t, r.Errors)
	require.Equal(t, 1, e.userCount(org.admin))
}

// U1/U2: username, company email and group name are unique per organization,
// case-insensitively; the same values are free in another organization.
func TestUniquenessIsCaseInsensitivePerOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	a, b := e.tenant("a"), e.tenant("b")
	e.createUser(a.admin, "alice")
	e.createGroup(a.admin, "Staff")

	in := func(username, email string) map[string]any {
		return map[string]any{"in": map[string]any{"username": username, "email": email}}
	}
	e.fails(a.admin, createUser, in("ALICE", "other@example.com"), "CONFLICT", "username")
	e.fails(a.admin, createUser, in("alice2", "Alice@Example.COM"), "CONFLICT", "email")
	e.fails(a.admin, createGroup, map[string]any{"in": map[string]any{"name": "sTAFF"}}, "CONFLICT", "name")

	bob := e.createUser(a.admin, "bob")
	e.fails(a.admin, `mutation($id: ID!) { updateUser(id: $id, input: {username: "Alice"}) { user { id } } }`,
		map[string]any{"id": bob.ID}, "CONFLICT", "username")

	e.createUser(b.admin, "alice")
	e.createGroup(b.admin, "staff")
	require.Equal(t, 2, e.userCount(a.admin))
	require.Equal(t, 1, e.userCount(b.admin))
}

// Concurrent creates of one username: the database's unique index lets
// exactly one win; the others answer CONFLICT.
func TestConcurrentDuplicateUsernameOneWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	const n = 8
	var wg sync.WaitGroup
	codes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.post(org.admin, createUser, map[string]any{"in": map[string]any{
				"username": "Racer", "email": "racer" + string(rune('a'+i)) + "@example.com",
			}})
			if len(r.Errors) > 0 {
				codes[i] = r.Errors[0].code() + "/" + r.Errors[0].field()
			} else {
				codes[i] = "ok"
			}
		}()
	}
	wg.Wait()
	var ok, conflict int
	for _, c := range codes {
		switch c {
		case "ok":
			ok++
		case "CONFLICT/username":
			conflict++
		default:
			t.Errorf("unexpected outcome %q", c)
		}
	}
	require.Equal(t, 1, ok, "codes: %v", codes)
	require.Equal(t, n-1, conflict)
	require.Equal(t, 1, e.userCount(org.admin))
}

func TestStateTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	const suspend = `mutation($id: ID!) { suspendUser(id: $id) { user { state updatedAt } } }`
	const activate = `mutation($id: ID!) { activateUser(id: $id) { user { state updatedAt } } }`
	type out struct {
		SuspendUser, ActivateUser *struct {
			User struct{ State, UpdatedAt string }
		}
	}
	state := func(q, id string) (string, string) {
		var o out
		e.must(org.admin, q, map[string]any{"id": id}, &o)
		p := o.SuspendUser
		if p == nil {
			p = o.ActivateUser
		}
		return p.User.State, p.User.UpdatedAt
	}

	staged := e.createUser(org.admin, "staged")
	require.Equal(t, "STAGED", staged.State)
	s, _ := state(activate, staged.ID) // STAGED → ACTIVE
	require.Equal(t, "ACTIVE", s)
	s, at := state(suspend, staged.ID) // ACTIVE → SUSPENDED
	require.Equal(t, "SUSPENDED", s)
	s, at2 := state(suspend, staged.ID) // same state: no-op
	require.Equal(t, "SUSPENDED", s)
	require.Equal(t, at, at2, "a same-state call must not write")
	s, _ = state(activate, staged.ID) // SUSPENDED → ACTIVE
	require.Equal(t, "ACTIVE", s)

	other := e.createUser(org.admin, "other")
	s, _ = state(suspend, other.ID) // STAGED → SUSPENDED
	require.Equal(t, "SUSPENDED", s)

	// State is not part of the update input: transitions go through the mutations above.
	r := e.post(org.admin, `mutation($id: ID!) { updateUser(id: $id, input: {state: STAGED}) { user { id } } }`, map[string]any{"id": other.ID})
	require.NotEmpty(t, r.Errors)

	e.fails(org.admin, suspend, map[string]any{"id": "USnotanid"}, "NOT_FOUND", "id")
}

// All mutations of one request share one transaction: when one fails, the
// others are rolled back too.
func TestFailedMutationRollsBackTheWholeRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	r := e.post(org.admin, `mutation {
		a: createUser(input: {username: "first", email: "first@example.com"}) { user { id } }
		g: createUserGroup(input: {name: "grp"}) { userGroup { id } }
		b: createUser(input: {username: "bad name", email: "second@example.com"}) { user { id } }
	}`, nil)
	require.Len(t, r.Errors, 1)
	require.Equal(t, "BAD_USER_INPUT", r.Errors[0].code())
	require.Equal(t, "username", r.Errors[0].field())
	require.Zero(t, e.userCount(org.admin))

	// After a database error the following mutations are not run.
	e.createUser(org.admin, "taken")
	r = e.post(org.admin, `mutation {
		a: createUser(input: {username: "TAKEN", email: "x@example.com"}) { user { id } }
		b: createUserGroup(input: {name: "grp"}) { userGroup { id } }
	}`, nil)
	require.Len(t, r.Errors, 2)
	require.Equal(t, "CONFLICT", r.Errors[0].code())
	require.Equal(t, "ABORTED", r.Errors[1].code())
	require.Equal(t, []any{"b"}, r.Errors[1].Path)
	var out struct{ UserGroups struct{ TotalCount int } }
	e.must(org.admin, `{ userGroups { totalCount } }`, nil, &out)
	require.Zero(t, out.UserGroups.TotalCount)
}

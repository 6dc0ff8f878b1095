package passwords_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/notification"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/passwords"
)

// W1, I4: an admin's password reaches the user's account in every
// integration the user is provisioned in, and nobody else's password moves.
// The plaintext is then nowhere at rest (W2): not in a pg_dump, not in any
// Redis key, not in the debug log.
func TestAdminSetPushesOnlyToTheUsersAccounts(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	in1 := s.integration(0, nil)
	in2 := s.integration(1, nil)
	alice := s.user("alice", "contoso.com", "ACTIVE", in1)
	s.user("bob", "contoso.com", "ACTIVE", in1)
	s.user("dave", "fabrikam.com", "ACTIVE", in2)
	bobBefore := s.remote(0, "bob@contoso.com").Password
	daveBefore := s.remote(1, "dave@fabrikam.com").Password

	const pw = "Plain-Text-Secret-41"
	js := s.setPassword(alice, pw)
	require.Len(t, js, 1)
	require.Equal(t, jobs.JobPasswordSet, js[0].Kind)
	s.remotePassword(0, "alice@contoso.com", pw)
	require.Equal(t, bobBefore, s.remote(0, "bob@contoso.com").Password)
	require.Equal(t, daveBefore, s.remote(1, "dave@fabrikam.com").Password)
	require.Nil(t, s.remote(1, "alice@contoso.com"))

	// The link remembers the version it received (W3) and the event is recorded (P6).
	l, err := s.app.Ent.RemoteLink.Query().Where(remotelink.UserID(pulid.ID(alice))).Only(s.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, l.PasswordVersion)
	var ev struct {
		Events struct {
			Edges []struct{ Node struct{ Type string } }
		}
	}
	s.ok(s.admin, `query { events(first: 50) { edges { node { type } } } }`, nil, &ev)
	types := []string{}
	for _, e := range ev.Events.Edges {
		types = append(types, e.Node.Type)
	}
	require.Contains(t, types, passwords.EventPasswordUpdate)

	// A second password in a row supersedes nothing it should not: the newest wins.
	const pw2 = "Plain-Text-Secret-42"
	s.setPassword(alice, pw2)
	s.remotePassword(0, "alice@contoso.com", pw2)

	s.login("ALICE@contoso.com", pw2) // login by email, any case
	s.settle()
	assertNoPlaintext(t, s, pw, pw2)
}

// assertNoPlaintext dumps the database, every Redis key and the debug log
// and looks for the passwords (W2).
func assertNoPlaintext(t *testing.T, s *stack, secrets ...string) {
	t.Helper()
	dump, err := exec.Command("pg_dump", "--data-only", s.dbURL).CombinedOutput()
	require.NoError(t, err, "%s", dump)
	require.Contains(t, string(dump), "argon2id", "the dump holds the hashes")
	rdb := redis.NewClient(s.redis.Options())
	defer rdb.Close()
	ctx := context.Background()
	var everything strings.Builder
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired or deleted since KEYS (leases, rate-limit windows): nothing left to leak
		}
		require.NoError(t, err)
		everything.WriteString(k + "=" + v + "\n")
		// DUMP is the serialized value; also read hashes field by field (asynq tasks).
		if typ, _ := rdb.Type(ctx, k).Result(); typ == "hash" {
			m, _ := rdb.HGetAll(ctx, k).Result()
			for f, x := range m {
				everything.WriteString(f + "=" + x + "\n")
			}
		}
	}
	// The sealed copies are erased from the outbox once the pushes are over.
	var sealed int
	require.NoError(t, s.app.DB.QueryRow(`SELECT count(*) FROM outbox WHERE kind = $1 AND convert_from(payload, 'UTF8') LIKE '%"sealed"%'`,
		jobs.KindPushPassword).Scan(&sealed))
	require.Zero(t, sealed)
	logs := s.logs.String()
	require.NotEmpty(t, logs)
	for _, pw := range secrets {
		require.NotContains(t, string(dump), pw, "pg_dump")
		require.NotContains(t, everything.String(), pw, "redis")
		require.NotContains(t, logs, pw, "logs")
	}
}

// P2, W1, W3, O3: a STAGED user that took over an existing remote account
// keeps its remote password when the admin sets one; with password takeover
// on, the first portal login pushes it, and the next login pushes nothing.
func TestTakeoverLoginPushesOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	require.NoError(t, s.sim.SeedUsers(s.creds[0].TenantID, 1))
	seeded := s.sim.Users(s.creds[0].TenantID)[0]
	remotePw := seeded.Password
	s.ok(s.admin, `mutation { updateOrganization(input: {passwordTakeover: true}) { organization { passwordTakeover } } }`, nil, nil)
	in1 := s.integration(0, nil)
	carol := s.userWithEmail("carol", seeded.UserPrincipalName, "STAGED", in1)
	l, err := s.app.Ent.RemoteLink.Query().Where(remotelink.UserID(pulid.ID(carol))).Only(s.ctx)
	require.NoError(t, err)
	require.True(t, l.TakenOver)

	const pw = "Takeover-Pass-77"
	js := s.setPassword(carol, pw)
	require.Empty(t, js, "P2: no push to a taken-over account of a staged user")
	require.Equal(t, remotePw, s.remote(0, seeded.UserPrincipalName).Password)

	s.login(seeded.UserPrincipalName, pw)
	s.remotePassword(0, seeded.UserPrincipalName, pw)
	s.settle()
	s.login(seeded.UserPrincipalName, pw)
	s.settle()
	require.Equal(t, 1, s.countJobs(jobs.JobPasswordLogin), "two logins, one push")

	// Takeover off: a new password set by the admin goes out (W1) and a login pushes nothing.
	s.ok(s.admin, `mutation { updateOrganization(input: {passwordTakeover: false}) { organization { passwordTakeover } } }`, nil, nil)
	s.login(seeded.UserPrincipalName, pw)
	s.settle()
	require.Equal(t, 1, s.countJobs(jobs.JobPasswordLogin))
}

// Activation of a STAGED user: the token works once, sets the password,
// makes the user ACTIVE, enables the account and pushes the password.
func TestActivationEnablesAndPushes(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	in1 := s.integration(0, nil)
	erin := s.user("erin", "contoso.com", "STAGED", in1)
	s.remoteEnabled(0, "erin@contoso.com", false)

	var act struct {
		CreateActivation struct {
			Token     string
			ExpiresAt time.Time
		}
	}
	s.ok(s.admin, `mutation($u: ID!) { createActivation(userID: $u) { token expiresAt user { id } } }`, map[string]any{"u": erin}, &act)
	tok := act.CreateActivation.Token
	require.WithinDuration(t, time.Now().Add(72*time.Hour), act.CreateActivation.ExpiresAt, time.Minute)
	// The notification carries the token sealed for the delivery channel.
	n, err := s.app.Ent.Notification.Query().Where(notification.UserID(pulid.ID(erin)), notification.Kind(passwords.NoticeActivation)).Only(s.ctx)
	require.NoError(t, err)
	require.NotContains(t, n.SecretSealed, tok)
	opened, err := s.app.Keyring.Open(n.SecretSealed, passwords.NotificationAAD(n.ID))
	require.NoError(t, err)
	require.Equal(t, tok, string(opened))

	const activate = `mutation($t: String!, $p: String!) { activateAccount(token: $t, password: $p) { token expiresAt user { id state } } }`
	e := s.fails("", activate, map[string]any{"t": tok, "p": "erin-is-me-1A"}, "BAD_USER_INPUT")
	require.Contains(t, e.Message, "CONTAINS_NAME")
	var out struct {
		ActivateAccount struct {
			Token string
			User  struct{ State string }
		}
	}
	const pw = "Activated-Pass-5"
	s.ok("", activate, map[string]any{"t": tok, "p": pw}, &out)
	require.Equal(t, "ACTIVE", out.ActivateAccount.User.State)
	s.remotePassword(0, "erin@contoso.com", pw)
	s.remoteEnabled(0, "erin@contoso.com", true)
	s.fails("", activate, map[string]any{"t": tok, "p": pw}, "BAD_USER_INPUT")
	var me struct{ Me struct{ ID string } }
	s.ok(out.ActivateAccount.Token, `{ me { id } }`, nil, &me)
	require.Equal(t, erin, me.Me.ID)
}

// W1: the user's own change and a reset push; the reset ends the sessions.
// Policy refusals are typed; Graph's own refusal is a permanent error on
// the link and the job.
func TestChangeResetAndRefusals(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	in1 := s.integration(0, nil)
	frank := s.user("frank", "contoso.com", "ACTIVE", in1)
	for pw, rule := range map[string]string{"short1A": "LENGTH", "alllowercase99": "CHARACTER_CLASSES",
		"Frank-Rules-1": "CONTAINS_NAME", "Pässword-123": "CHARACTERS"} {
		e := s.fails(s.admin, setPw, map[string]any{"id": frank, "pw": pw}, "BAD_USER_INPUT")
		require.Contains(t, e.Message, rule)
		require.NotContains(t, e.Message, pw)
		require.Equal(t, "password", e.Extensions["field"])
	}
	u, err := s.app.Ent.User.Get(s.ctx, pulid.ID(frank))
	require.NoError(t, err)
	require.Nil(t, u.PasswordHash, "a refused password changes nothing")

	s.setPassword(frank, "First-Pass-1")
	tok := s.login("frank", "First-Pass-1")
	const change = `mutation($c: String!, $n: String!) { changeMyPassword(currentPassword: $c, newPassword: $n) { user { id } } }`
	s.fails(tok, change, map[string]any{"c": "wrong-Pass-1", "n": "Second-Pass-2"}, "BAD_USER_INPUT")
	s.ok(tok, change, map[string]any{"c": "First-Pass-1", "n": "Second-Pass-2"}, nil)
	s.remotePassword(0, "frank@contoso.com", "Second-Pass-2")

	const reqReset = `mutation($o: String!, $l: String!) { requestPasswordReset(organization: $o, login: $l) { ok } }`
	s.ok("", reqReset, map[string]any{"o": "acme", "l": "nobody"}, nil)
	s.ok("", reqReset, map[string]any{"o": "no-such-org", "l": "frank"}, nil)
	s.ok("", reqReset, map[string]any{"o": "acme", "l": "FRANK"}, nil)
	n, err := s.app.Ent.Notification.Query().Where(notification.Kind(passwords.NoticeReset)).All(s.ctx)
	require.NoError(t, err)
	require.Len(t, n, 1, "only the real account gets a reset")
	resetTok, err := s.app.Keyring.Open(n[0].SecretSealed, passwords.NotificationAAD(n[0].ID))
	require.NoError(t, err)
	const reset = `mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { ok } }`
	s.fails("", reset, map[string]any{"t": string(resetTok) + "x", "p": "Third-Pass-3"}, "BAD_USER_INPUT")
	s.ok("", reset, map[string]any{"t": string(resetTok), "p": "Third-Pass-3"}, nil)
	s.remotePassword(0, "frank@contoso.com", "Third-Pass-3")
	require.Equal(t, 401, s.do(tok, `{ me { id } }`, nil).status, "the reset ended the session")
	s.fails("", reset, map[string]any{"t": string(resetTok), "p": "Fourth-Pass-4"}, "BAD_USER_INPUT")

	// Graph refuses: the app lacks User-PasswordProfile.ReadWrite.All (403).
	app, err := s.sim.AddApp(s.creds[1].TenantID, graphsimAppWithoutPasswordRight())
	require.NoError(t, err)
	s.creds[1].ClientID, s.creds[1].ClientSecret = app.ClientID, app.ClientSecret
	in2 := s.integration(1, nil)
	gina := s.user("gina", "fabrikam.com", "ACTIVE", in2)
	js := s.setPassword(gina, "Refused-Pass-9")
	require.Len(t, js, 1)
	var j struct {
		Node struct {
			Status string
			Items  struct {
				Edges []struct {
					Node struct{ Status, ErrorCode string }
				}
			}
		}
	}
	s.ok(s.admin, `query($id: ID!) { node(id: $id) { ... on Job { status items { edges { node { status errorCode } } } } } }`,
		map[string]any{"id": js[0].ID}, &j)
	require.Equal(t, "FAILED", j.Node.Status)
	require.Equal(t, "Authorization_RequestDenied", j.Node.Items.Edges[0].Node.ErrorCode)
	l, err := s.app.Ent.RemoteLink.Query().Where(remotelink.UserID(pulid.ID(gina))).Only(s.ctx)
	require.NoError(t, err)
	require.Equal(t, "Authorization_RequestDenied", l.PasswordErrorCode)
	require.Equal(t, 0, l.PasswordVersion)
	s.settle()
	assertNoPlaintext(t, s, "First-Pass-1", "Second-Pass-2", "Third-Pass-3", "Refused-Pass-9")
}

// X5: a password past the organization's maximum age disables the account
// where the integration suspends on expiry; a new password enables it again.
func TestExpiryDeprovisionsAndNewPasswordEnables(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	s.ok(s.admin, `mutation { updateOrganization(input: {passwordMaxAgeDays: 1}) { organization { passwordMaxAgeDays } } }`, nil, nil)
	in1 := s.integration(0, map[string]any{"suspendOnPasswordExpiry": true})
	hank := s.user("hank", "contoso.com", "ACTIVE", in1)
	s.setPassword(hank, "Expiring-Pass-1")
	u, err := s.app.Ent.User.Get(s.ctx, pulid.ID(hank))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *u.PasswordExpiresAt, time.Minute)
	s.remoteEnabled(0, "hank@contoso.com", true)

	// A day goes by.
	_, err = s.app.DB.Exec(`UPDATE users SET password_set_at = now() - interval '2 days', password_expires_at = now() - interval '1 day' WHERE id = $1`, hank)
	require.NoError(t, err)
	s.remoteEnabled(0, "hank@contoso.com", false)
	// Settled: further sweeps find nothing to do (no job every period).
	s.settle()
	n := s.countJobs(jobs.JobPasswordPolicy)
	require.NoError(t, s.app.Passwords.Sweep(context.Background()))
	require.NoError(t, s.app.Passwords.Sweep(context.Background()))
	require.Equal(t, n, s.countJobs(jobs.JobPasswordPolicy))

	s.setPassword(hank, "Renewed-Pass-2")
	s.remoteEnabled(0, "hank@contoso.com", true)
	s.remotePassword(0, "hank@contoso.com", "Renewed-Pass-2")

	// Raising the maximum age recomputes the expiry.
	s.ok(s.admin, `mutation { updateOrganization(input: {clearPasswordMaxAgeDays: true}) { organization { passwordMaxAgeDays } } }`, nil, nil)
	u, err = s.app.Ent.User.Get(s.ctx, pulid.ID(hank))
	require.NoError(t, err)
	require.Nil(t, u.PasswordExpiresAt)
}

// X6: lockoutThreshold wrong passwords lock the account (the same answer as
// a wrong password, even with the right one) and disable it where the
// integration suspends on lock-out; unlockUser enables it again.
func TestLockoutDeprovisionsAndUnlockEnables(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	s.ok(s.admin, `mutation { updateOrganization(input: {lockoutThreshold: 3, lockoutMinutes: 0}) { organization { lockoutThreshold } } }`, nil, nil)
	in1 := s.integration(0, map[string]any{"suspendOnLockout": true})
	ivan := s.user("ivan", "contoso.com", "ACTIVE", in1)
	s.setPassword(ivan, "Locking-Pass-1")
	s.remoteEnabled(0, "ivan@contoso.com", true)

	wrong := s.fails("", login, map[string]any{"o": "acme", "l": "ivan", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
	unknown := s.fails("", login, map[string]any{"o": "acme", "l": "nobody", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
	require.Equal(t, wrong.Message, unknown.Message, "unknown accounts answer the same")
	for range 2 {
		s.fails("", login, map[string]any{"o": "acme", "l": "ivan", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
	}
	s.remoteEnabled(0, "ivan@contoso.com", false)
	locked := s.fails("", login, map[string]any{"o": "acme", "l": "ivan", "p": "Locking-Pass-1"}, "UNAUTHENTICATED")
	require.Equal(t, wrong.Message, locked.Message)

	var un struct {
		UnlockUser struct{ Jobs []struct{ ID string } }
	}
	s.ok(s.admin, `mutation($id: ID!) { unlockUser(id: $id) { user { id lockedUntil } jobs { id } } }`, map[string]any{"id": ivan}, &un)
	require.Len(t, un.UnlockUser.Jobs, 1)
	s.remoteEnabled(0, "ivan@contoso.com", true)
	s.login("ivan", "Locking-Pass-1")

	// A lock that runs out enables the account again through the sweep.
	s.ok(s.admin, `mutation { updateOrganization(input: {lockoutMinutes: 1}) { organization { lockoutMinutes } } }`, nil, nil)
	for range 3 {
		s.fails("", login, map[string]any{"o": "acme", "l": "ivan", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
	}
	s.remoteEnabled(0, "ivan@contoso.com", false)
	_, err := s.app.DB.Exec(`UPDATE users SET locked_until = now() - interval '1 second' WHERE id = $1`, ivan)
	require.NoError(t, err)
	s.remoteEnabled(0, "ivan@contoso.com", true)
	s.login("ivan", "Locking-Pass-1")
}

// O2: a portal session reaches only me, changeMyPassword and portalLogout;
// an API key cannot use those; without a credential only the public portal
// mutations pass. Forged, expired and logged-out tokens are refused.
func TestSessionScope(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{})
	in1 := s.integration(0, nil)
	judy := s.user("judy", "contoso.com", "ACTIVE", in1)
	s.setPassword(judy, "Scoped-Pass-1")
	tok := s.login("judy", "Scoped-Pass-1")

	var me struct{ Me struct{ ID, Username string } }
	s.ok(tok, `{ me { id username } }`, nil, &me)
	require.Equal(t, judy, me.Me.ID)
	s.fails(tok, `{ users(first: 5) { totalCount } }`, nil, "FORBIDDEN")
	s.fails(tok, `{ organization { name } }`, nil, "FORBIDDEN")
	s.fails(tok, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": judy}, "FORBIDDEN")
	s.fails(tok, setPw, map[string]any{"id": judy, "pw": "Other-Pass-2"}, "FORBIDDEN")
	s.fails(tok, `mutation($id: ID!) { suspendUser(id: $id) { user { id } } }`, map[string]any{"id": judy}, "FORBIDDEN")
	// Nested reads through me see nothing of the organization either: judy
	// is in a group, yet her session sees no group.
	var g struct {
		CreateUserGroup struct{ UserGroup struct{ ID string } }
	}
	s.ok(s.admin, `mutation { createUserGroup(input: {name: "staff"}) { userGroup { id } } }`, nil, &g)
	s.ok(s.admin, `mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id } } }`,
		map[string]any{"g": g.CreateUserGroup.UserGroup.ID, "u": []string{judy}}, nil)
	var mg struct {
		Me struct{ Groups struct{ TotalCount int } }
	}
	s.ok(tok, `{ me { groups(first: 5) { totalCount } } }`, nil, &mg)
	require.Zero(t, mg.Me.Groups.TotalCount)
	var ag struct {
		Node struct{ Groups struct{ TotalCount int } }
	}
	s.ok(s.admin, `query($id: ID!) { node(id: $id) { ... on User { groups(first: 5) { totalCount } } } }`, map[string]any{"id": judy}, &ag)
	require.Equal(t, 1, ag.Node.Groups.TotalCount)

	s.fails(s.admin, `mutation { changeMyPassword(currentPassword: "Scoped-Pass-1", newPassword: "Other-Pass-2") { user { id } } }`, nil, "FORBIDDEN")
	s.fails(s.admin, `{ me { id } }`, nil, "FORBIDDEN")
	s.fails(s.admin, `mutation { portalLogout { ok } }`, nil, "FORBIDDEN")

	// No credential: only a request made of public mutations gets through.
	for _, q := range []string{`{ users(first: 1) { totalCount } }`, `{ me { id } }`,
		`mutation { portalLogin(organization: "acme", login: "judy", password: "x") { token } createUser(input: {username: "x", email: "x@contoso.com"}) { user { id } } }`,
		`mutation { ...F } fragment F on Mutation { createUser(input: {username: "x", email: "x@contoso.com"}) { user { id } } }`,
		`mutation { changeMyPassword(currentPassword: "a", newPassword: "b") { user { id } } }`,
		`subscription { events { id } }`} {
		require.Equal(t, 401, s.do("", q, nil).status, q)
	}
	// A public mutation's payload reads nothing beyond the user it returns.
	r := s.do("", `mutation { portalLogin(organization: "acme", login: "judy", password: "Scoped-Pass-1") { token user { id groups(first: 1) { totalCount } } } }`, nil)
	require.NotEmpty(t, r.Errors, "%s", r.Data)

	for _, bad := range []string{tok + "x", "dsp_" + strings.Repeat("A", 43), "dsp_"} {
		require.Equal(t, 401, s.do(bad, `{ me { id } }`, nil).status, bad)
	}
	s.ok(tok, `mutation { portalLogout { ok } }`, nil, nil)
	require.Equal(t, 401, s.do(tok, `{ me { id } }`, nil).status, "logged out")

	tok2 := s.login("judy", "Scoped-Pass-1")
	_, err := s.app.DB.Exec(`UPDATE user_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'SESSION'`)
	require.NoError(t, err)
	require.Equal(t, 401, s.do(tok2, `{ me { id } }`, nil).status, "expired")
	// The session row holds a hash, never the token.
	var n int
	require.NoError(t, s.app.DB.QueryRow(`SELECT count(*) FROM user_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'`, tok2[4:20]).Scan(&n))
	require.Zero(t, n)
}

// Brute force: per-account and per-IP limits answer TOO_MANY_REQUESTS.
func TestLoginRateLimited(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{account: rateLimit(3), ip: rateLimit(100)})
	for range 3 {
		s.fails("", login, map[string]any{"o": "acme", "l": "nobody", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
	}
	s.fails("", login, map[string]any{"o": "acme", "l": "nobody", "p": "Wrong-Pass-1"}, "TOO_MANY_REQUESTS")
	s.fails("", login, map[string]any{"o": "acme", "l": "someone", "p": "Wrong-Pass-1"}, "UNAUTHENTICATED")
}

var _ = fmt.Sprintf

package passwords

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/organization"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usertoken"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/password"
	"github.com/dirsync/dirsync/internal/txn"
)

// errLogin is the one answer to a failed login: unknown organization or user,
// no password yet, wrong password and locked account look the same.
var errLogin = gqlerr.Newf(gqlerr.Unauthenticated, "", "the login or password is wrong, or the account is locked")

// Login checks a portal login (O2) and opens a session. login is the username
// or the company email, case-insensitively. Unknown accounts cost one dummy
// hash, so they answer in the same time as a wrong password. A wrong password
// counts towards the lock-out (X6). A right one resets the counter, replaces a
// hash made with older parameters, and, while the organization's password
// takeover is on (O3), pushes the password to the accounts whose copy is not
// current (W1, W3).
func (s *Service) Login(ctx context.Context, orgName, login, pw string) (*Session, error) {
	ctx = own(ctx)
	account := strings.ToLower(strings.TrimSpace(orgName)) + "\x00" + rules.Fold(strings.TrimSpace(login))
	if err := s.allow(ctx, "login", account); err != nil {
		return nil, err
	}
	u, org, err := s.findLogin(ctx, orgName, login)
	if err != nil {
		return nil, err
	}
	if u == nil || u.PasswordHash == nil {
		s.cfg.Hasher.VerifyDummy(ctx, pw)
		return nil, errLogin
	}
	ok, rehash, err := s.cfg.Hasher.Verify(ctx, pw, *u.PasswordHash)
	if err != nil && !errors.Is(err, password.ErrMalformed) {
		return nil, err
	}
	now := s.cfg.Now()
	if locked(u, now) {
		return nil, errLogin
	}
	if !ok {
		if err := s.failed(ctx, u.ID, org); err != nil {
			return nil, err
		}
		return nil, errLogin
	}
	if u.State == user.StateSUSPENDED {
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "the account is suspended")
	}
	var newHash string
	if rehash {
		if newHash, err = s.cfg.Hasher.Hash(ctx, pw); err != nil {
			return nil, err
		}
	}
	// The common login changes nothing on the user: it only opens a session,
	// without taking the user's row lock, so simultaneous logins of one
	// account do not queue behind each other's commits.
	plain := u.FailedLogins == 0 && newHash == "" && !org.PasswordTakeover
	var sess *Session
	err = txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		if plain {
			var err error
			sess, err = s.newSession(ctx, c, u, now)
			return err
		}
		cur, err := lockUser(ctx, c, u.ID)
		if err != nil {
			return err
		}
		up := cur.Update().SetFailedLogins(0)
		if newHash != "" && cur.PasswordHash != nil && *cur.PasswordHash == *u.PasswordHash {
			up.SetPasswordHash(newHash)
		}
		if cur, err = up.Save(ctx); err != nil {
			return err
		}
		if sess, err = s.newSession(ctx, c, cur, now); err != nil {
			return err
		}
		if org.PasswordTakeover && !expired(cur, now) && cur.PasswordVersion == u.PasswordVersion {
			_, err = s.push(ctx, c, cur, pw, pushLogin, jobs.JobPasswordLogin, false)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !plain { // the user was re-read inside the transaction
		sess.User = sess.User.Unwrap()
	}
	return sess, nil
}

// findLogin finds the user of a login in the named organization; nil when
// either is unknown.
func (s *Service) findLogin(ctx context.Context, orgName, login string) (*ent.User, *ent.Organization, error) {
	org, err := s.client.Organization.Query().Where(organization.Name(strings.TrimSpace(orgName))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("passwords: organization: %w", err)
	}
	f := rules.Fold(strings.TrimSpace(login))
	u, err := s.client.User.Query().Where(user.OrganizationID(org.ID),
		user.Or(user.UsernameFolded(f), user.EmailFolded(f))).First(ctx)
	if ent.IsNotFound(err) {
		return nil, org, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("passwords: user: %w", err)
	}
	return u, org, nil
}

// failed counts a wrong password. Reaching the organization's threshold
// locks the user for lockoutMinutes (0: until unlocked), restarts the count,
// and reconciles the integrations that suspend on lock-out (X6).
func (s *Service) failed(ctx context.Context, id pulid.ID, org *ent.Organization) error {
	return txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		cur, err := lockUser(ctx, c, id)
		if err != nil {
			return err
		}
		now := s.cfg.Now()
		if locked(cur, now) {
			return nil
		}
		n := cur.FailedLogins + 1
		if n < org.LockoutThreshold {
			return cur.Update().SetFailedLogins(n).Exec(ctx)
		}
		until := LockedForever
		if org.LockoutMinutes > 0 {
			until = now.Add(minutes(org.LockoutMinutes))
		}
		u, err := cur.Update().SetFailedLogins(0).SetLockedUntil(until).Save(ctx)
		if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "passwords: user locked out", "org", string(u.OrganizationID), "user", string(u.ID), "until", until)
		_, err = reconcileWhere(ctx, c, u, jobs.JobPasswordPolicy, suspendsOnLockout)
		return err
	})
}

// Activate sets a STAGED user's first password with an activation token,
// makes the user ACTIVE (a reconcile job enables the accounts) and pushes the
// password (W1), then opens a session. The token works once.
func (s *Service) Activate(ctx context.Context, token, pw string) (*Session, error) {
	ctx = own(ctx)
	if err := s.allow(ctx, "activate", ""); err != nil {
		return nil, err
	}
	u, err := tokenUser(ctx, s.client, token, usertoken.KindACTIVATION, "token", s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if err := checkPolicy("password", pw, u); err != nil {
		return nil, err
	}
	phc, err := s.cfg.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	var sess *Session
	err = txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		now := s.cfg.Now()
		// The token again, under the user's lock: two activations with one token, one wins.
		if _, err := tokenUser(ctx, c, token, usertoken.KindACTIVATION, "token", now); err != nil {
			return err
		}
		cur, err := lockUser(ctx, c, u.ID)
		if err != nil {
			return err
		}
		if cur.State != user.StateSTAGED {
			return gqlerr.Newf(gqlerr.FailedPrecondition, "token", "the account is already %s", cur.State)
		}
		if cur, err = storePassword(ctx, c, cur, phc, now); err != nil {
			return err
		}
		if cur, err = cur.Update().SetState(user.StateACTIVE).SetFailedLogins(0).ClearLockedUntil().Save(ctx); err != nil {
			return err
		}
		if _, err := c.UserToken.Delete().Where(usertoken.UserID(cur.ID), usertoken.KindEQ(usertoken.KindACTIVATION)).Exec(ctx); err != nil {
			return fmt.Errorf("passwords: use token: %w", err)
		}
		if _, err := reconcileWhere(ctx, c, cur, jobs.JobUserActivate, func(*ent.Integration) bool { return true }); err != nil {
			return err
		}
		if _, err := s.push(ctx, c, cur, pw, pushUser, jobs.JobPasswordSet, false); err != nil {
			return err
		}
		sess, err = s.newSession(ctx, c, cur, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	sess.User = sess.User.Unwrap()
	return sess, nil
}

// Me returns the user of the portal session in ctx, read as that session:
// the privacy policy lets a session read its own user row only.
func (s *Service) Me(ctx context.Context) (*ent.User, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok || !v.IsPortal() {
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "only a portal session may ask for me")
	}
	return s.client.User.Query().Where(user.ID(v.UserID)).Only(ctx)
}

// ChangeMine changes the session user's password (W1). A wrong current
// password counts towards the lock-out like a failed login.
func (s *Service) ChangeMine(ctx context.Context, current, next string) (*ent.User, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok || !v.IsPortal() {
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "only a portal session may change its password")
	}
	ctx = own(ctx)
	if err := s.allow(ctx, "change", string(v.UserID)); err != nil {
		return nil, err
	}
	u, err := s.client.User.Get(ctx, v.UserID)
	if err != nil {
		return nil, err
	}
	ok, _, err = s.cfg.Hasher.Verify(ctx, current, deref(u.PasswordHash))
	if err != nil && !errors.Is(err, password.ErrMalformed) {
		return nil, err
	}
	if !ok {
		org, err := s.client.Organization.Get(ctx, u.OrganizationID)
		if err != nil {
			return nil, err
		}
		if err := s.failed(ctx, u.ID, org); err != nil {
			return nil, err
		}
		return nil, gqlerr.BadInput("currentPassword", "the current password is wrong")
	}
	if err := checkPolicy("newPassword", next, u); err != nil {
		return nil, err
	}
	return s.replace(ctx, u, next, false, nil)
}

// replace stores a password the user chose (change, reset), pushes it
// everywhere, and reconciles where the expiry or the lock-out it ends had
// suspended the user.
func (s *Service) replace(ctx context.Context, u *ent.User, pw string, endSessions bool,
	recheck func(ctx context.Context, c *ent.Client) error) (*ent.User, error) {
	phc, err := s.cfg.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	err = txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		now := s.cfg.Now()
		cur, err := lockUser(ctx, c, u.ID)
		if err != nil {
			return err
		}
		if recheck != nil {
			if err := recheck(ctx, c); err != nil {
				return err
			}
		}
		wasExpired, wasLocked := expired(cur, now), endSessions && cur.LockedUntil != nil
		if u, err = storePassword(ctx, c, cur, phc, now); err != nil {
			return err
		}
		if endSessions {
			// A reset proves control of the mailbox: it ends the lock-out and
			// every session a guessed password may have opened.
			if u, err = u.Update().SetFailedLogins(0).ClearLockedUntil().Save(ctx); err != nil {
				return err
			}
			if _, err := c.UserToken.Delete().Where(usertoken.UserID(u.ID), usertoken.KindIn(usertoken.KindSESSION, usertoken.KindRESET)).Exec(ctx); err != nil {
				return fmt.Errorf("passwords: end sessions: %w", err)
			}
		}
		if _, err := s.push(ctx, c, u, pw, pushUser, jobs.JobPasswordSet, false); err != nil {
			return err
		}
		if wasExpired || wasLocked {
			_, err = reconcileWhere(ctx, c, u, jobs.JobPasswordPolicy, func(in *ent.Integration) bool {
				return wasExpired && in.SuspendOnPasswordExpiry || wasLocked && in.SuspendOnLockout
			})
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u.Unwrap(), nil
}

// Logout ends the portal session in ctx. Ending an ended session succeeds.
func (s *Service) Logout(ctx context.Context) error {
	v, ok := auth.ViewerFrom(ctx)
	if !ok || !v.IsPortal() {
		return gqlerr.Newf(gqlerr.Forbidden, "", "only a portal session may log out")
	}
	_, err := s.client.UserToken.Delete().Where(usertoken.ID(v.SessionID)).Exec(own(ctx))
	return err
}

// RequestReset records a reset token (ResetTTL) and a notification carrying
// it for the user of login, if there is such a user who may log in. The
// answer is the same either way.
func (s *Service) RequestReset(ctx context.Context, orgName, login string) error {
	ctx = own(ctx)
	account := strings.ToLower(strings.TrimSpace(orgName)) + "\x00" + rules.Fold(strings.TrimSpace(login))
	if err := s.allow(ctx, "reset", account); err != nil {
		return err
	}
	u, _, err := s.findLogin(ctx, orgName, login)
	if err != nil || u == nil || u.State == user.StateSUSPENDED {
		return err
	}
	return txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		_, _, err := s.issueToken(ctx, c, u, usertoken.KindRESET, s.cfg.ResetTTL, NoticeReset,
			"A password reset was requested for your account: choose a new password with the reset link. If it was not you, ignore this message.",
			s.cfg.Now())
		return err
	})
}

// Reset sets a new password with a reset token (W1), ends the user's
// sessions and lock-out; the token works once.
func (s *Service) Reset(ctx context.Context, token, pw string) error {
	ctx = own(ctx)
	if err := s.allow(ctx, "reset-token", ""); err != nil {
		return err
	}
	u, err := tokenUser(ctx, s.client, token, usertoken.KindRESET, "token", s.cfg.Now())
	if err != nil {
		return err
	}
	if u.State == user.StateSUSPENDED {
		return gqlerr.BadInput("token", "the token is invalid or expired")
	}
	if err := checkPolicy("newPassword", pw, u); err != nil {
		return err
	}
	// The token again under the user's lock: two resets with one token, one wins.
	_, err = s.replace(ctx, u, pw, true, func(ctx context.Context, c *ent.Client) error {
		_, err := tokenUser(ctx, c, token, usertoken.KindRESET, "token", s.cfg.Now())
		return err
	})
	return err
}

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

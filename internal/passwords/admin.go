package passwords

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usertoken"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/txn"
)

// SetPassword sets or changes a user's password as an administrator (W1):
// policy check, argon2id hash, a new version, the user's portal sessions
// ended, and a push job to every provisioned account (see pushAdmin). When the
// old password had expired, the integrations that suspended the user for it
// (X5) get a reconcile job too. It runs on the caller's transaction, so the
// privacy policy scopes the user to the caller's organization.
func (s *Service) SetPassword(ctx context.Context, id pulid.ID, pw string, force bool) (*ent.User, []*ent.Job, error) {
	u, err := s.client.User.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, nil, gqlerr.NotFoundf("id", "user %s not found", id)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := checkPolicy("password", pw, u); err != nil {
		return nil, nil, err
	}
	phc, err := s.cfg.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, nil, err
	}
	var out []*ent.Job
	err = txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		now := s.cfg.Now()
		cur, err := lockUser(ctx, c, id)
		if err != nil {
			return err
		}
		wasExpired := expired(cur, now)
		if u, err = storePassword(ctx, c, cur, phc, now); err != nil {
			return err
		}
		if _, err := c.UserToken.Delete().Where(usertoken.UserID(id), usertoken.KindIn(usertoken.KindSESSION, usertoken.KindRESET)).Exec(ctx); err != nil {
			return fmt.Errorf("passwords: end sessions: %w", err)
		}
		pj, err := s.push(ctx, c, u, pw, pushAdmin, jobs.JobPasswordSet, force)
		if err != nil {
			return err
		}
		var rj *ent.Job
		if wasExpired {
			if rj, err = reconcileWhere(ctx, c, u, jobs.JobPasswordPolicy, suspendsOnExpiry); err != nil {
				return err
			}
		}
		out = jobs.List(pj, rj)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return detachUser(ctx, u), detachJobs(ctx, out), nil
}

// CreateActivation issues a one-time activation token (ActivationTTL) for a
// STAGED user and records a notification carrying it; older activation tokens
// of the user stop working.
func (s *Service) CreateActivation(ctx context.Context, id pulid.ID) (*Activation, error) {
	var a *Activation
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		u, err := c.User.Get(ctx, id)
		if ent.IsNotFound(err) {
			return gqlerr.NotFoundf("userID", "user %s not found", id)
		}
		if err != nil {
			return err
		}
		if u.State != user.StateSTAGED {
			return gqlerr.Newf(gqlerr.FailedPrecondition, "userID", "user %s is %s; only a STAGED user can be activated", id, u.State)
		}
		tok, exp, err := s.issueToken(ctx, c, u, usertoken.KindACTIVATION, s.cfg.ActivationTTL, NoticeActivation,
			"Your account is ready: choose your password with the activation link.", s.cfg.Now())
		if err != nil {
			return err
		}
		a = &Activation{Token: tok, ExpiresAt: exp, User: u}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.User = detachUser(ctx, a.User)
	return a, nil
}

// Unlock ends a lock-out (X6) and resets the failed-login counter; the
// integrations that suspend on lock-out get a reconcile job enabling the
// user again. Unlocking an unlocked user changes nothing.
func (s *Service) Unlock(ctx context.Context, id pulid.ID) (*ent.User, []*ent.Job, error) {
	var (
		u   *ent.User
		out []*ent.Job
	)
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		cur, err := lockUser(ctx, c, id)
		if err != nil {
			return err
		}
		u = cur
		if cur.LockedUntil == nil && cur.FailedLogins == 0 {
			return nil
		}
		if u, err = cur.Update().ClearLockedUntil().SetFailedLogins(0).Save(ctx); err != nil {
			return err
		}
		if cur.LockedUntil == nil {
			return nil
		}
		j, err := reconcileWhere(ctx, c, u, jobs.JobPasswordPolicy, suspendsOnLockout)
		out = jobs.List(j)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return detachUser(ctx, u), detachJobs(ctx, jobs.List(out...)), nil
}

// detachUser makes an entity loaded in a transaction usable after it ended
// (under the request's transaction it stays attached to it).
func detachUser(ctx context.Context, u *ent.User) *ent.User {
	if u != nil && ent.TxFromContext(ctx) == nil {
		return u.Unwrap()
	}
	return u
}

func detachJobs(ctx context.Context, js []*ent.Job) []*ent.Job {
	if ent.TxFromContext(ctx) != nil {
		return js
	}
	for i, j := range js {
		js[i] = j.Unwrap()
	}
	return js
}

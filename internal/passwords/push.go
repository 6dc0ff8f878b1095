package passwords

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/tenant"
)

// Event types of password pushes (P6; failures are ours).
const (
	EventPasswordUpdate       = "user_password_update_provision"
	EventPasswordUpdateFailed = "user_password_update_failed"
)

// Item results of a push.
const (
	ResultPasswordSet = "PASSWORD_SET"
	// ResultSuperseded: a newer password was set meanwhile; its own push sends it.
	ResultSuperseded = "SUPERSEDED"
)

// PusherConfig configures a Pusher.
type PusherConfig struct {
	Ent       *ent.Client
	Tenants   *tenant.Connector
	Keyring   *secrets.Keyring
	Publisher *pubsub.Publisher
	Logger    *slog.Logger
	Now       func() time.Time
}

// Pusher is the worker's handler of jobs.KindPushPassword.
type Pusher struct {
	cfg PusherConfig
	log *slog.Logger
}

// NewPusher validates cfg.
func NewPusher(cfg PusherConfig) (*Pusher, error) {
	if cfg.Ent == nil || cfg.Tenants == nil || cfg.Keyring == nil {
		return nil, errors.New("passwords: pusher needs Ent, Tenants and Keyring")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pusher{cfg: cfg, log: cfg.Logger.With("component", "password-push")}, nil
}

// errNotYet: the account the password is for is being created; try later.
var errNotYet = errors.New("passwords: the remote account is not created yet")

// pushOutcome is how one push ended.
type pushOutcome struct {
	done      bool // the item is finished (success, skip or permanent failure)
	failed    bool
	result    string
	code, msg string
	event     string
	detail    string
	transient error
}

// HandlePush writes the password of t to the user's account in t's
// integration: PATCH /users/{id} passwordProfile, through the integration's
// client and throttle budget. It reads the current state first: a newer
// password supersedes this one, an account that is no longer ours is
// skipped, one that already has this version is left alone (W3). Graph's own
// refusal (password policy 400, missing permission 403) is a permanent error
// on the link and the item. Once the push succeeded or finally failed, the
// sealed password is erased from the outbox row (W2).
func (p *Pusher) HandlePush(ctx context.Context, t jobs.PushPassword, final bool) error {
	ctx = auth.SystemContext(ctx)
	log := p.log.With("org", string(t.OrgID), "integration", string(t.IntegrationID), "user", string(t.UserID), "job", string(t.JobID))
	if t.JobID != "" {
		changed, err := jobs.MarkRunning(ctx, p.cfg.Ent, t.OrgID, t.JobID, p.cfg.Now())
		if err != nil {
			return err
		}
		if changed {
			p.publishJob(ctx, log, t)
		}
	}
	tx, err := p.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("passwords: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()
	// One push per (user, integration) at a time, so versions land in order.
	h := fnv.New64a()
	_, _ = h.Write([]byte("dirsync:password-push:" + string(t.IntegrationID) + ":" + string(t.UserID)))
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("passwords: lock: %w", err)
	}
	o, link, err := p.push(ctx, c, t)
	if err != nil {
		return err
	}
	if o.transient != nil && !final {
		log.Warn("passwords: push failed, will retry", "err", o.transient)
		return o.transient
	}
	if o.transient != nil {
		o.fail(o.transient)
	}
	if link != nil {
		up := c.RemoteLink.UpdateOneID(link.ID)
		if o.failed {
			up.SetPasswordErrorCode(jobs.Truncate(o.code, 200)).SetPasswordErrorMessage(jobs.Truncate(o.msg, 2000))
			// Back to what the account has, so a later login may try again (W3).
			up.SetPasswordQueuedVersion(link.PasswordVersion)
		} else if o.result == ResultPasswordSet {
			up.SetPasswordVersion(t.Version).SetPasswordPushedAt(p.cfg.Now()).
				SetPasswordErrorCode("").SetPasswordErrorMessage("")
		}
		if err := up.Exec(ctx); err != nil {
			return fmt.Errorf("passwords: save link: %w", err)
		}
	}
	completed := false
	if t.JobID != "" && t.ItemID != "" {
		j, err := jobs.CompleteItem(ctx, c, t.OrgID, t.JobID, t.ItemID, jobs.ItemOutcome{
			Failed: o.failed, Result: o.result, ErrorCode: o.code, ErrorMessage: o.msg}, p.cfg.Now())
		if err != nil {
			return err
		}
		completed = j != nil
	}
	var ev *ent.Event
	if o.event != "" {
		ec := c.Event.Create().SetOrganizationID(t.OrgID).SetType(o.event).SetUserID(t.UserID).
			SetIntegrationID(t.IntegrationID).SetDetail(jobs.Truncate(o.detail, 4000))
		if t.JobID != "" {
			ec.SetJobID(t.JobID)
		}
		if ev, err = ec.Save(ctx); err != nil {
			return fmt.Errorf("passwords: event: %w", err)
		}
	}
	if t.ItemID != "" {
		// W2: the sealed password does not outlive the push, in any row that
		// carried it (the sweeper may have sent a copy of a lost task). Rows
		// are found by their job item, which every push row records.
		if _, err := c.ExecContext(ctx, `UPDATE outbox SET payload = $1 WHERE job_item_id = $2 AND kind = $3`,
			t.Erased(), t.ItemID, jobs.KindPushPassword); err != nil {
			return fmt.Errorf("passwords: erase payload: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("passwords: commit: %w", err)
	}
	log.Info("passwords: push finished", "result", o.result, "failed", o.failed, "code", o.code)
	if completed {
		p.publishJob(ctx, log, t)
	}
	if ev != nil && p.cfg.Publisher != nil {
		if m, err := jobs.EventMessage(ev); err == nil {
			_ = p.cfg.Publisher.Publish(ctx, m)
		}
	}
	return nil
}

func (o *pushOutcome) fail(err error) {
	code, msg := "TRANSIENT", err.Error()
	var ge *msgraph.Error
	if errors.As(err, &ge) {
		code, msg = ge.Code, ge.Message
		if code == "" {
			code = fmt.Sprintf("HTTP_%d", ge.Status)
		}
		if ge.RequestID != "" {
			msg += " (request-id " + ge.RequestID + ")"
		}
	} else if ae, ok := msgraph.IsAuthError(err); ok {
		code, msg = "AUTH_"+ae.Reason(), ae.Error()
	} else if errors.Is(err, errNotYet) {
		code = "NOT_PROVISIONED"
	}
	o.done, o.failed, o.result, o.code, o.msg, o.transient = true, true, jobs.ResultError, code, msg, nil
	o.event, o.detail = EventPasswordUpdateFailed, code+": "+msg
}

// push decides and sends; the error is for the database only.
func (p *Pusher) push(ctx context.Context, c *ent.Client, t jobs.PushPassword) (pushOutcome, *ent.RemoteLink, error) {
	skip := func(result string) (pushOutcome, *ent.RemoteLink, error) {
		return pushOutcome{done: true, result: result}, nil, nil
	}
	u, err := c.User.Query().Where(user.ID(t.UserID), user.OrganizationID(t.OrgID)).Only(ctx)
	if ent.IsNotFound(err) {
		return skip(jobs.ResultSkipped)
	}
	if err != nil {
		return pushOutcome{}, nil, fmt.Errorf("passwords: user: %w", err)
	}
	if u.PasswordVersion != t.Version {
		return skip(ResultSuperseded)
	}
	in, err := c.Integration.Query().Where(integration.ID(t.IntegrationID), integration.OrganizationID(t.OrgID)).Only(ctx)
	if ent.IsNotFound(err) || (err == nil && in.Status != integration.StatusAUTHORIZED) {
		return skip(jobs.ResultSkipped)
	}
	if err != nil {
		return pushOutcome{}, nil, fmt.Errorf("passwords: integration: %w", err)
	}
	link, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.UserID(u.ID),
		remotelink.KindEQ(remotelink.KindUSER)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return pushOutcome{}, nil, fmt.Errorf("passwords: link: %w", err)
	}
	if link == nil || link.RemoteID == "" {
		connected, err := connect.Connected(ctx, c, u.ID, in.ID)
		if err != nil {
			return pushOutcome{}, nil, err
		}
		if !connected || (link != nil && link.Status != remotelink.StatusPENDING) {
			return skip(jobs.ResultOutOfScope)
		}
		return pushOutcome{transient: errNotYet}, link, nil
	}
	if link.Status == remotelink.StatusOUT_OF_SCOPE || link.Status == remotelink.StatusREMOTE_DELETED {
		return skip(jobs.ResultOutOfScope)
	}
	if link.PasswordVersion >= t.Version {
		return skip(jobs.ResultUnchanged)
	}
	plain, err := p.cfg.Keyring.Open(t.Sealed, jobs.PushAAD(t.OrgID, t.UserID, t.IntegrationID, t.Version))
	if err != nil {
		o := pushOutcome{}
		o.fail(fmt.Errorf("the queued password cannot be opened (erased, or sealed with a key no longer configured): %w", err))
		o.code = "SEALED_PASSWORD_UNAVAILABLE"
		return o, link, nil
	}
	gc, err := p.cfg.Tenants.Client(in)
	if err != nil {
		o := pushOutcome{}
		o.fail(err)
		o.code = "INTEGRATION_CONFIG"
		return o, link, nil
	}
	err = gc.UpdateUser(ctx, link.RemoteID, msgraph.UserFields{PasswordProfile: &msgraph.PasswordProfile{
		Password: string(plain), ForceChangePasswordNextSignIn: t.ForceChange}})
	clear(plain)
	if err != nil {
		o := pushOutcome{}
		if msgraph.IsPermanent(err) {
			o.fail(err)
		} else if ae, ok := msgraph.IsAuthError(err); ok && ae.Reason() != "unavailable" {
			o.fail(err)
		} else {
			o.transient = fmt.Errorf("passwords: push to %s: %w", in.ID, err)
		}
		return o, link, nil
	}
	return pushOutcome{done: true, result: ResultPasswordSet, event: EventPasswordUpdate,
		detail: fmt.Sprintf("password (version %d) written to remote user %s (%s)", t.Version, link.RemoteID, link.Upn)}, link, nil
}

func (p *Pusher) publishJob(ctx context.Context, log *slog.Logger, t jobs.PushPassword) {
	if err := jobs.PublishJob(ctx, p.cfg.Ent, p.cfg.Publisher, t.OrgID, t.JobID); err != nil {
		log.Warn("passwords: publish job", "err", err)
	}
}

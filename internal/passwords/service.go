// Package passwords is the password lifecycle and the user portal (O2, O3, U1,
// W1–W3, X5, X6): administrators set passwords and issue activation tokens,
// end users activate, log in, change and reset their passwords, and every new
// password is pushed, sealed, to the integrations the user is provisioned in.
// Logins that fail often enough lock the account; expired passwords and
// lock-outs are part of the reconcile's desired state (internal/provision),
// and a periodic sweep starts those reconciles when only time changed.
package passwords

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usertoken"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/password"
	"github.com/dirsync/dirsync/internal/secrets"
)

// Config configures a Service.
type Config struct {
	Ent *ent.Client
	// Keyring seals pushed passwords and the tokens notifications carry;
	// without it nothing can be pushed (the calls that would push fail).
	Keyring *secrets.Keyring
	Hasher  *password.Hasher
	// Redis holds the rate limiters; nil: no rate limits (the lock-out still applies).
	Redis redis.UniversalClient
	// SessionTTL is a portal session's life, at most an hour (default).
	SessionTTL time.Duration
	// ActivationTTL (default 72 h) and ResetTTL (default 1 h) bound the tokens.
	ActivationTTL, ResetTTL time.Duration
	// AccountLimit and IPLimit bound the portal logins, resets and
	// activations per account and per client IP; defaults 10 and 30 a minute.
	AccountLimit, IPLimit redis_rate.Limit
	// RateKeyPrefix namespaces the limiter keys (tests); default "dirsync:portal:".
	RateKeyPrefix string
	Logger        *slog.Logger
	Now           func() time.Time
}

// Service is the password and portal domain service.
type Service struct {
	cfg     Config
	client  *ent.Client
	limiter *redis_rate.Limiter
	log     *slog.Logger
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Service, error) {
	var errs []error
	if cfg.Ent == nil {
		errs = append(errs, errors.New("passwords: Ent required"))
	}
	if cfg.Hasher == nil {
		errs = append(errs, errors.New("passwords: Hasher required"))
	}
	if cfg.SessionTTL <= 0 || cfg.SessionTTL > auth.MaxSessionTTL {
		cfg.SessionTTL = auth.MaxSessionTTL
	}
	if cfg.ActivationTTL <= 0 {
		cfg.ActivationTTL = 72 * time.Hour
	}
	if cfg.ResetTTL <= 0 {
		cfg.ResetTTL = time.Hour
	}
	if cfg.AccountLimit.IsZero() {
		cfg.AccountLimit = redis_rate.PerMinute(10)
	}
	if cfg.IPLimit.IsZero() {
		cfg.IPLimit = redis_rate.PerMinute(30)
	}
	if cfg.RateKeyPrefix == "" {
		cfg.RateKeyPrefix = "dirsync:portal:"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, client: cfg.Ent, log: cfg.Logger.With("component", "passwords")}
	if cfg.Redis != nil {
		s.limiter = redis_rate.NewLimiter(cfg.Redis)
	}
	return s, nil
}

// LockedForever is the locked_until of a lock-out only an administrator ends
// (lockoutMinutes 0).
var LockedForever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Session is a portal session just opened.
type Session struct {
	Token     string
	ExpiresAt time.Time
	User      *ent.User
}

// Activation is an activation token just created.
type Activation struct {
	Token     string
	ExpiresAt time.Time
	User      *ent.User
}

// own is ctx as the system, outside the GraphQL request's transaction: the
// portal's writes (failed-login counters above all) must commit even when
// the mutation answers an error, which rolls the request's transaction back.
func own(ctx context.Context) context.Context {
	return auth.SystemContext(ent.NewTxContext(ctx, nil))
}

// policyErr turns a password policy violation into BAD_USER_INPUT on field.
func policyErr(field string, err error) error {
	var pe *password.PolicyError
	if errors.As(err, &pe) {
		return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: field, Message: pe.Error(), Err: err}
	}
	return err
}

// checkPolicy applies the password policy with the user's names as the words to avoid.
func checkPolicy(field, pw string, u *ent.User) error {
	local, _, _ := strings.Cut(u.Email, "@")
	return policyErr(field, password.Check(pw, u.Username, local, u.FirstName, u.LastName))
}

// allow applies the per-account and per-IP limits of one portal action.
func (s *Service) allow(ctx context.Context, action, account string) error {
	if s.limiter == nil {
		return nil
	}
	keys := map[string]redis_rate.Limit{}
	if ip := auth.ClientIP(ctx); ip != "" {
		keys[s.cfg.RateKeyPrefix+"ip:"+ip] = s.cfg.IPLimit
	}
	if account != "" {
		// Hashed: the limiter's keys need not name anybody.
		sum := sha256.Sum256([]byte(action + "\x00" + account))
		keys[s.cfg.RateKeyPrefix+action+":"+hex.EncodeToString(sum[:12])] = s.cfg.AccountLimit
	}
	for key, limit := range keys {
		res, err := s.limiter.Allow(ctx, key, limit)
		if err != nil {
			// Fail open: Redis down must not lock every user out; the
			// lock-out in PostgreSQL still bounds guessing per account.
			s.log.WarnContext(ctx, "passwords: rate limiter unavailable", "err", err)
			return nil
		}
		if res.Allowed == 0 {
			return gqlerr.Newf(gqlerr.TooManyRequests, "", "too many attempts, retry in %d seconds", int(res.RetryAfter.Seconds())+1)
		}
	}
	return nil
}

// lockUser locks the user row for a change that keeps its key (see directory).
func lockUser(ctx context.Context, c *ent.Client, id pulid.ID) (*ent.User, error) {
	u, err := c.User.Query().Where(user.ID(id)).ForUpdate().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, gqlerr.NotFoundf("id", "user %s not found", id)
	}
	return u, err
}

// expired reports whether u's password has expired at now (X5).
func expired(u *ent.User, now time.Time) bool {
	return u.PasswordExpiresAt != nil && !u.PasswordExpiresAt.After(now)
}

// locked reports whether u is locked out at now (X6).
func locked(u *ent.User, now time.Time) bool {
	return u.LockedUntil != nil && u.LockedUntil.After(now)
}

// storePassword writes a new password hash: set time, expiry (the
// organization's maximum age), a new version (W3). The row must be locked.
func storePassword(ctx context.Context, c *ent.Client, u *ent.User, phc string, now time.Time) (*ent.User, error) {
	org, err := c.Organization.Get(ctx, u.OrganizationID)
	if err != nil {
		return nil, fmt.Errorf("passwords: organization: %w", err)
	}
	up := c.User.UpdateOneID(u.ID).SetPasswordHash(phc).SetPasswordSetAt(now).SetPasswordVersion(u.PasswordVersion + 1)
	if org.PasswordMaxAgeDays != nil {
		up.SetPasswordExpiresAt(now.AddDate(0, 0, *org.PasswordMaxAgeDays))
	} else {
		up.ClearPasswordExpiresAt()
	}
	return up.Save(ctx)
}

// pushMode says which of the user's accounts a new password goes to.
type pushMode int

const (
	// pushAdmin: every provisioned account, except the accounts a STAGED user
	// took over: the person keeps their remote password until they log in (P2).
	pushAdmin pushMode = iota
	// pushUser: every provisioned account, and the ones about to be created
	// (the handler waits for them).
	pushUser
	// pushLogin: only accounts whose copy is not current and not already on
	// its way (W3): every password write ends the user's Microsoft sessions.
	pushLogin
)

// push starts a job pushing pw (already stored as u's current version) per
// mode, and marks the links as having it queued. No account: no job.
func (s *Service) push(ctx context.Context, c *ent.Client, u *ent.User, pw string, mode pushMode, kind string, force bool) (*ent.Job, error) {
	links, err := c.RemoteLink.Query().Where(remotelink.UserID(u.ID), remotelink.KindEQ(remotelink.KindUSER),
		remotelink.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED))).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("passwords: links: %w", err)
	}
	var ids, queued []pulid.ID
	linked := map[pulid.ID]bool{}
	for _, l := range links {
		linked[l.IntegrationID] = true
		if l.RemoteID == "" || l.Status == remotelink.StatusOUT_OF_SCOPE || l.Status == remotelink.StatusREMOTE_DELETED {
			continue
		}
		switch mode {
		case pushAdmin:
			if u.State == user.StateSTAGED && l.TakenOver {
				continue
			}
		case pushLogin:
			if l.PasswordVersion >= u.PasswordVersion || l.PasswordQueuedVersion >= u.PasswordVersion {
				continue
			}
		}
		ids = append(ids, l.IntegrationID)
		queued = append(queued, l.ID)
	}
	if mode == pushUser {
		// Connected but not provisioned yet (a bind just made): the push
		// waits for the account the reconcile is creating.
		targets, err := connect.UserTargets(ctx, c, []pulid.ID{u.ID})
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if !linked[t.IntegrationID] && !slices.Contains(ids, t.IntegrationID) {
				ids = append(ids, t.IntegrationID)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if s.cfg.Keyring == nil {
		return nil, gqlerr.Newf(gqlerr.FailedPrecondition, "", "the server has no secret key (DIRSYNC_SECRET_KEY), so passwords cannot be pushed to integrations")
	}
	job, err := jobs.StartPush(ctx, c, u.OrganizationID, u.ID, kind, ids, u.PasswordVersion, force, func(in pulid.ID) (string, error) {
		return s.cfg.Keyring.Seal([]byte(pw), jobs.PushAAD(u.OrganizationID, u.ID, in, u.PasswordVersion))
	})
	if err != nil {
		return nil, err
	}
	if len(queued) > 0 {
		err = c.RemoteLink.Update().Where(remotelink.IDIn(queued...), remotelink.PasswordQueuedVersionLT(u.PasswordVersion)).
			SetPasswordQueuedVersion(u.PasswordVersion).Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("passwords: mark queued: %w", err)
		}
	}
	return job, nil
}

// reconcileWhere starts a job of kind reconciling the user in the integrations the
// filter keeps (those that suspend on expiry, or on lock-out): the X5/X6
// state just changed. None: no job.
func reconcileWhere(ctx context.Context, c *ent.Client, u *ent.User, kind string, keep func(*ent.Integration) bool) (*ent.Job, error) {
	targets, err := connect.UserTargets(ctx, c, []pulid.ID{u.ID})
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	ids := make([]pulid.ID, 0, len(targets))
	for _, t := range targets {
		ids = append(ids, t.IntegrationID)
	}
	ins, err := c.Integration.Query().Where(integration.IDIn(ids...)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("passwords: integrations: %w", err)
	}
	want := map[pulid.ID]bool{}
	for _, in := range ins {
		want[in.ID] = keep(in)
	}
	out := targets[:0]
	for _, t := range targets {
		if want[t.IntegrationID] {
			out = append(out, t)
		}
	}
	return jobs.Start(ctx, c, u.OrganizationID, kind, "", out)
}

func suspendsOnExpiry(in *ent.Integration) bool  { return in.SuspendOnPasswordExpiry }
func suspendsOnLockout(in *ent.Integration) bool { return in.SuspendOnLockout }

// newSession opens a portal session for u and drops u's expired tokens.
func (s *Service) newSession(ctx context.Context, c *ent.Client, u *ent.User, now time.Time) (*Session, error) {
	if _, err := c.UserToken.Delete().Where(usertoken.UserID(u.ID), usertoken.ExpiresAtLT(now)).Exec(ctx); err != nil {
		return nil, fmt.Errorf("passwords: prune tokens: %w", err)
	}
	tok, hash, err := auth.NewUserToken(usertoken.KindSESSION)
	if err != nil {
		return nil, err
	}
	exp := now.Add(s.cfg.SessionTTL)
	err = c.UserToken.Create().SetOrganizationID(u.OrganizationID).SetUserID(u.ID).SetKind(usertoken.KindSESSION).
		SetTokenHash(hash).SetExpiresAt(exp).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("passwords: session: %w", err)
	}
	return &Session{Token: tok, ExpiresAt: exp, User: u}, nil
}

// issueToken creates a one-time token of kind for u (replacing older ones of
// that kind) and a notification to u carrying it sealed for the delivery
// channel.
func (s *Service) issueToken(ctx context.Context, c *ent.Client, u *ent.User, kind usertoken.Kind, ttl time.Duration,
	notice, message string, now time.Time) (string, time.Time, error) {
	if _, err := c.UserToken.Delete().Where(usertoken.UserID(u.ID), usertoken.KindEQ(kind)).Exec(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("passwords: drop old tokens: %w", err)
	}
	tok, hash, err := auth.NewUserToken(kind)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(ttl)
	err = c.UserToken.Create().SetOrganizationID(u.OrganizationID).SetUserID(u.ID).SetKind(kind).
		SetTokenHash(hash).SetExpiresAt(exp).Exec(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("passwords: token: %w", err)
	}
	nid := pulid.New("NO")
	nc := c.Notification.Create().SetID(nid).SetOrganizationID(u.OrganizationID).SetUserID(u.ID).SetKind(notice).
		SetMessage(fmt.Sprintf("%s It is valid until %s.", message, exp.UTC().Format(time.RFC3339)))
	if s.cfg.Keyring != nil {
		sealed, err := s.cfg.Keyring.Seal([]byte(tok), NotificationAAD(nid))
		if err != nil {
			return "", time.Time{}, err
		}
		nc.SetSecretSealed(sealed)
	}
	if err := nc.Exec(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("passwords: notification: %w", err)
	}
	return tok, exp, nil
}

// NotificationAAD is the associated data of a notification's sealed token.
func NotificationAAD(notificationID pulid.ID) []byte {
	return []byte("dirsync:notification-secret:v1:" + string(notificationID))
}

// Notification kinds this package records.
const (
	NoticeActivation = "ACCOUNT_ACTIVATION"
	NoticeReset      = "PASSWORD_RESET"
)

// tokenUser finds the user of an unexpired one-time token of kind.
func tokenUser(ctx context.Context, c *ent.Client, token string, kind usertoken.Kind, field string, now time.Time) (*ent.User, error) {
	if len(token) > 128 {
		return nil, gqlerr.BadInput(field, "the token is invalid or expired")
	}
	t, err := c.UserToken.Query().Where(usertoken.TokenHash(auth.HashToken(token)), usertoken.KindEQ(kind),
		usertoken.ExpiresAtGT(now)).WithUser().Only(ctx)
	if ent.IsNotFound(err) || (err == nil && t.Edges.User == nil) {
		return nil, gqlerr.BadInput(field, "the token is invalid or expired")
	}
	if err != nil {
		return nil, fmt.Errorf("passwords: token: %w", err)
	}
	return t.Edges.User, nil
}

package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/ownership"
	"github.com/dirsync/dirsync/internal/upn"
)

// linkState is the link row as the reconcile leaves it.
type linkState struct {
	RemoteID        string
	UPN             string
	Status          string
	Reason          string
	RemoteEnabled   *bool
	TakenOver       bool
	RemoteCreatedAt *time.Time
	AppliedHash     string
	ErrCode         string
	ErrMessage      string
	ErrRequestID    string
	OwnerMarked     bool // the account carries our ownership marker (internal/ownership)
}

func linkStateOf(l *ent.RemoteLink) linkState {
	if l == nil {
		return linkState{Status: StatusPending}
	}
	return linkState{RemoteID: l.RemoteID, UPN: l.Upn, Status: string(l.Status), Reason: l.StatusReason,
		RemoteEnabled: l.RemoteEnabled, TakenOver: l.TakenOver, RemoteCreatedAt: l.RemoteCreatedAt,
		AppliedHash: l.AppliedHash, ErrCode: l.LastErrorCode, ErrMessage: l.LastErrorMessage,
		ErrRequestID: l.LastErrorRequestID, OwnerMarked: l.OwnerMarked}
}

// plan is the planner's view of the link. An OUT_OF_SCOPE link that still names
// a remote object is released: de-authorization (I5) marks links so, and an I4
// or D3 scope loss leaves one so after disabling the account.
func (s linkState) plan() Link {
	return Link{RemoteID: s.RemoteID, UPN: s.UPN, RemoteEnabled: s.RemoteEnabled, TakenOver: s.TakenOver,
		AppliedHash: s.AppliedHash, Reason: s.Reason,
		Released: s.Status == StatusOutOfScope && s.RemoteID != ""}
}

// forgetRemote: the remote object is gone (deleted by someone in Entra).
func (s *linkState) forgetRemote() {
	s.RemoteID, s.AppliedHash, s.RemoteEnabled, s.TakenOver, s.RemoteCreatedAt = "", "", nil, false, nil
	s.OwnerMarked = false
}

// outcome is what the reconcile did and how to record it.
type outcome struct {
	link     linkState
	dropLink bool
	skipLink bool // leave the link row alone
	held     bool // the mass-deprovision guard holds the item: record nothing
	result   string
	failed   bool
	code     string
	message  string
	event    string
	detail   string
	// deprovision: the failed step was taking access away (failure event type).
	deprovision bool
	transient   error
}

// fail records a permanent (or final) failure: link ERROR with Graph's code,
// message and request id, item FAILED, a failure event.
func (o *outcome) fail(err error) {
	code, msg, reqID := CodeTransient, err.Error(), ""
	var ge *msgraph.Error
	var ae *msgraph.AuthError
	switch {
	case errors.As(err, &ge):
		code, msg, reqID = ge.Code, ge.Message, ge.RequestID
		if code == "" {
			code = fmt.Sprintf("HTTP_%d", ge.Status)
		}
	case errors.As(err, &ae):
		code, msg = "AUTH_"+strings.ToUpper(ae.Reason()), ae.Error()
	case errors.Is(err, errOrphanHolder):
		code = CodeRemoteUserLinked
	}
	o.failWith(code, msg, reqID)
}

func (o *outcome) failWith(code, msg, reqID string) {
	o.failed, o.result, o.code, o.message = true, jobs.ResultError, code, msg
	o.link.Status, o.link.ErrCode, o.link.ErrMessage, o.link.ErrRequestID = StatusError, code, msg, reqID
	o.dropLink = false
	o.event = EventProvisionFailed
	if o.deprovision {
		o.event = EventDeprovisionFailed
	}
	o.detail = fmt.Sprintf("%s: %s", code, msg)
	if reqID != "" {
		o.detail += " (request-id " + reqID + ")"
	}
}

func (o *outcome) clearError() { o.link.ErrCode, o.link.ErrMessage, o.link.ErrRequestID = "", "", "" }

// permanent reports errors that re-sending cannot fix: Graph 4xx other than
// 401/404/408/429, and credentials the token endpoint refused (bad secret,
// unknown client or tenant: only re-authorizing helps).
func permanent(err error) bool {
	if msgraph.IsPermanent(err) {
		return true
	}
	if ae, ok := msgraph.IsAuthError(err); ok {
		return ae.Reason() != "unavailable"
	}
	return false
}

type applier struct {
	drift      []string // properties a forced reconcile found changed remotely
	r          *Reconciler
	st         *state
	d          Desired
	resolveErr error
	o          *outcome
	gc         *msgraph.Client
	now        time.Time
	forcedFrom *ownership.Marker // a forced takeover's previous owner
}

func (a *applier) graph() (*msgraph.Client, error) {
	if a.gc != nil {
		return a.gc, nil
	}
	gc, err := a.r.cfg.Tenants.Client(a.st.in)
	if err != nil {
		return nil, err
	}
	a.gc = gc
	return gc, nil
}

// remoteErr sorts a remote failure: permanent ones are recorded as failures,
// others become the transient error Handle returns.
func (a *applier) remoteErr(err error) {
	if permanent(err) {
		a.o.fail(err)
		return
	}
	a.o.transient = fmt.Errorf("provision: user %s in integration %s: %w", a.st.userID, a.st.in.ID, err)
	var ge *msgraph.Error
	if errors.As(err, &ge) {
		a.o.link.ErrCode, a.o.link.ErrMessage, a.o.link.ErrRequestID = ge.Code, ge.Message, ge.RequestID
	} else {
		a.o.link.ErrCode, a.o.link.ErrMessage, a.o.link.ErrRequestID = CodeTransient, err.Error(), ""
	}
}

// fresh marks calls about an object we created less than the replication
// window ago, so the Graph client retries its 404s (another worker may have
// created it, so the client's own memory does not know).
func (a *applier) fresh(ctx context.Context) context.Context {
	if a.recentlyCreated() {
		return msgraph.WithRetryNotFound(ctx)
	}
	return ctx
}

func (a *applier) recentlyCreated() bool {
	rc := a.o.link.RemoteCreatedAt
	return rc != nil && a.now.Sub(*rc) < replicationWindow
}

func (a *applier) apply(ctx context.Context, c *ent.Client, p Plan) error {
	o := a.o
	o.link.Reason = p.Reason
	switch p.Action {
	case Nothing:
		o.link.Status = p.StatusAfter
		o.dropLink = p.DropLink
		switch p.StatusAfter {
		case StatusError:
			o.failWith(invalidCode(a.resolveErr), p.Reason, "")
		case StatusOutOfScope:
			o.result = jobs.ResultOutOfScope
			o.clearError()
		default:
			o.result = jobs.ResultUnchanged
			o.clearError()
		}
		return nil
	case Disable:
		o.deprovision = true
		gc, err := a.graph()
		if err != nil {
			a.configErr(err)
			return nil
		}
		err = gc.UpdateUser(a.fresh(ctx), o.link.RemoteID, msgraph.UserFields{AccountEnabled: msgraph.Ptr(false)})
		if msgraph.IsNotFound(err) && !a.recentlyCreated() {
			// Someone deleted it in Entra: nothing left to disable.
			o.link.forgetRemote()
			o.link.Status, o.link.Reason = p.StatusAfter, p.Reason+"; the remote user no longer exists"
			o.dropLink, o.result = p.DropLink, jobs.ResultUnchanged
			o.clearError()
			return nil
		}
		if err != nil {
			a.remoteErr(err)
			return nil
		}
		o.link.RemoteEnabled, o.link.AppliedHash = msgraph.Ptr(false), ""
		o.link.Status, o.dropLink = p.StatusAfter, p.DropLink
		o.clearError()
		o.result, o.event = jobs.ResultDisabled, EventUserDeprovision
		o.detail = fmt.Sprintf("disabled remote user %s (%s): %s", o.link.RemoteID, o.link.UPN, p.Reason)
		return nil
	case Patch:
		return a.patch(ctx, c, p)
	case LookupThenCreateOrTakeOver:
		return a.lookupThenCreate(ctx, c, p)
	}
	return fmt.Errorf("provision: unknown action %v", p.Action)
}

// reread is the forced reconcile (resync, retry): the applied hash only says
// what we last wrote, not what the tenant holds now, so read the linked
// account and make the link say what is really there — its real
// accountEnabled, and no applied hash when an exported property drifted — so
// that Decide re-applies exactly what someone changed behind our back. An
// account released by de-authorization stays untouched, as without force.
// stop: the read failed and the outcome records why.
func (a *applier) reread(ctx context.Context, want Plan) (stop bool) {
	o := a.o
	if o.link.RemoteID == "" {
		return false
	}
	if l := o.link.plan(); l.Released && (!a.d.Exists || !a.d.Connected) {
		return false
	}
	gc, err := a.graph()
	if err != nil {
		a.configErr(err)
		return true
	}
	remote, err := gc.GetUserProperties(a.fresh(ctx), o.link.RemoteID, DriftSelect(want.Body)...)
	if msgraph.IsNotFound(err) && !a.recentlyCreated() {
		// Deleted in Entra: converge from scratch (P1), or nothing left to disable.
		o.link.forgetRemote()
		return false
	}
	if err != nil {
		a.remoteErr(err)
		return true
	}
	if v, ok := remote["accountEnabled"].(bool); ok {
		o.link.RemoteEnabled = &v
	}
	if want.Body != nil {
		if a.drift = Drift(want.Body, remote); len(a.drift) > 0 {
			o.link.AppliedHash = ""
		}
	}
	return false
}

func (a *applier) configErr(err error) {
	a.o.failWith(CodeIntegrationSettings, err.Error(), "")
}

// invalidCode names why a mapped email cannot become a UPN (D2), for the item
// and the link.
func invalidCode(err error) string {
	switch {
	case errors.Is(err, upn.ErrNoEmail):
		return "NO_MAPPED_EMAIL"
	case errors.Is(err, upn.ErrBadEmail):
		return "INVALID_EMAIL"
	case errors.Is(err, upn.ErrUnverifiedDomain):
		return "UNVERIFIED_DOMAIN"
	case errors.Is(err, upn.ErrLocalPart):
		return "INVALID_UPN_LOCAL_PART"
	}
	return "INVALID_UPN"
}

func (a *applier) patch(ctx context.Context, c *ent.Client, p Plan) error {
	o := a.o
	enable, hasEnable := p.Body["accountEnabled"].(bool)
	wasEnabled := o.link.RemoteEnabled
	o.deprovision = hasEnable && !enable && (wasEnabled == nil || *wasEnabled)
	gc, err := a.graph()
	if err != nil {
		a.configErr(err)
		return nil
	}
	fields, err := UserFields(p.Body, false)
	if err != nil {
		return err
	}
	err = gc.UpdateUser(a.fresh(ctx), o.link.RemoteID, fields)
	if msgraph.IsNotFound(err) && !a.recentlyCreated() {
		if goneRemotely(a.st, o) {
			return nil
		}
		// Deleted in Entra by someone, and this reconcile was forced (a
		// resync): converge again from scratch (P1).
		o.link.forgetRemote()
		o.deprovision = false
		return a.lookupThenCreate(ctx, c, Decide(a.d, o.link.plan()))
	}
	if err != nil {
		a.remoteErr(err)
		return nil
	}
	o.link.AppliedHash, o.link.UPN, o.link.Status = p.Hash, a.d.Decision.UPN, p.StatusAfter
	o.clearError()
	switch {
	case hasEnable && enable && (wasEnabled == nil || !*wasEnabled):
		o.result, o.event = jobs.ResultEnabled, EventUserUpdate
		o.detail = fmt.Sprintf("enabled remote user %s (%s)", o.link.RemoteID, o.link.UPN)
	case o.deprovision:
		o.result, o.event = jobs.ResultDisabled, EventUserDeprovision
		o.detail = fmt.Sprintf("disabled remote user %s (%s): user %s", o.link.RemoteID, o.link.UPN, strings.ToLower(a.d.State))
	default:
		o.result, o.event = jobs.ResultUpdated, EventUserUpdate
		o.detail = fmt.Sprintf("updated remote user %s (%s)", o.link.RemoteID, o.link.UPN)
	}
	if len(a.drift) > 0 {
		o.detail += "; changed in the tenant: " + strings.Join(a.drift, ", ")
	}
	if hasEnable {
		o.link.RemoteEnabled = msgraph.Ptr(enable)
	}
	return nil
}

// lookupThenCreate is P1: find the remote user by UPN; take it over, or create it.
func (a *applier) lookupThenCreate(ctx context.Context, c *ent.Client, p Plan) error {
	o := a.o
	gc, err := a.graph()
	if err != nil {
		a.configErr(err)
		return nil
	}
	want := a.d.Decision.UPN
	// The per-user locks do not serialise two users resolving to one UPN (D4
	// rewrites can collide): without this lock the second could find the
	// first's fresh account before the first committed its link, see no
	// holder and take it over. Held until commit, so the second one's
	// takeOver sees the first one's link. Always the last lock taken.
	if err := advisoryLock(ctx, c, a.st.in.ID, "upn", pulid.ID(strings.ToLower(want))); err != nil {
		return err
	}
	found, err := a.find(ctx, gc, want)
	if err != nil {
		a.remoteErr(err)
		return nil
	}
	if found != nil {
		return a.takeOver(ctx, c, gc, found)
	}
	pw, err := NewPassword(strings.SplitN(want, "@", 2)[0], a.st.u.FirstName, a.st.u.LastName)
	if err != nil {
		return err
	}
	fields, err := UserFields(p.Body, true)
	if err != nil {
		return err
	}
	fields.AccountEnabled = msgraph.Ptr(p.Enable)
	fields.MailNickname = msgraph.Ptr(upn.MailNickname(want))
	fields.PasswordProfile = &msgraph.PasswordProfile{Password: pw}
	created, err := gc.CreateUser(ctx, fields)
	if msgraph.IsUPNConflict(err) {
		// Our own earlier POST (answer lost) or someone else's account that the
		// list did not show yet: look again and take it over. Never a second user.
		found, ferr := a.find(ctx, gc, want)
		switch {
		case ferr != nil:
			a.remoteErr(ferr)
		case found == nil:
			a.remoteErr(errInvisible)
		default:
			return a.takeOver(ctx, c, gc, found)
		}
		return nil
	}
	if err != nil {
		a.remoteErr(err)
		return nil
	}
	now := a.now
	o.link.RemoteID, o.link.UPN, o.link.TakenOver = created.ID, want, false
	o.link.RemoteEnabled, o.link.RemoteCreatedAt = msgraph.Ptr(p.Enable), &now
	o.link.AppliedHash, o.link.Status = p.Hash, p.StatusAfter
	o.link.OwnerMarked = false
	a.markCreated(ctx, gc, created.ID)
	o.clearError()
	o.result, o.event = jobs.ResultCreated, EventUserCreate
	state := "disabled (staged)"
	if p.Enable {
		state = "enabled"
	}
	o.detail = fmt.Sprintf("created remote user %s as %s, %s", created.ID, want, state)
	return nil
}

// find looks a user up by UPN and accepts only an exact (case-insensitive)
// match, so a lookup can never hand us someone else's account. Lookups of
// concurrent reconciles leave together, up to 15 in one request (lookup.go).
func (a *applier) find(ctx context.Context, gc *msgraph.Client, want string) (*msgraph.User, error) {
	return a.r.lookups.find(ctx, gc, want)
}

// takeOver links an existing remote user and writes our exported attributes
// (P1). A staged user sends no password and leaves accountEnabled alone (P2).
func (a *applier) takeOver(ctx context.Context, c *ent.Client, gc *msgraph.Client, found *msgraph.User) error {
	o := a.o
	q := c.RemoteLink.Query().Where(remotelink.IntegrationID(a.st.in.ID), remotelink.RemoteID(found.ID),
		remotelink.OrganizationID(a.st.t.OrgID))
	if a.st.link != nil {
		q = q.Where(remotelink.IDNEQ(a.st.link.ID))
	}
	holder, err := q.First(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return fmt.Errorf("provision: link holder: %w", err)
	}
	if holder != nil {
		// Two directory users resolving to one UPN (D4 rewrites can collide): never
		// let the second take over the first's account.
		if holder.UserID == nil {
			a.remoteErr(errOrphanHolder)
		} else {
			o.failWith(CodeRemoteUserLinked, fmt.Sprintf("the remote user %s (%s) is already provisioned for directory user %s",
				found.ID, found.UserPrincipalName, *holder.UserID), "")
		}
		return nil
	}
	if a.claim(ctx, gc, found.ID) {
		return nil
	}
	o.link.RemoteID, o.link.TakenOver, o.link.RemoteCreatedAt = found.ID, true, nil
	o.link.UPN, o.link.AppliedHash, o.link.RemoteEnabled = found.UserPrincipalName, "", found.AccountEnabled
	p := Decide(a.d, o.link.plan())
	fields, err := UserFields(p.Body, false)
	if err != nil {
		return err
	}
	if err := gc.UpdateUser(ctx, found.ID, fields); err != nil {
		a.remoteErr(err)
		return nil
	}
	o.link.UPN, o.link.AppliedHash, o.link.Status = a.d.Decision.UPN, p.Hash, p.StatusAfter
	if v, ok := p.Body["accountEnabled"].(bool); ok {
		o.link.RemoteEnabled = msgraph.Ptr(v)
	}
	o.clearError()
	o.result, o.event = jobs.ResultTakenOver, EventUserCreate
	o.detail = fmt.Sprintf("took over existing remote user %s (%s)", found.ID, a.d.Decision.UPN)
	return nil
}

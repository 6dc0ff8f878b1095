// Package ownership is dirsync's ownership marker (issue 14): every remote
// user dirsync creates or takes over carries an open extension
// (com.dirsync.owner) naming the dirsync deployment, organization and
// integration that manage it, so a second integration — of this
// organization, another one, or another dirsync deployment on the same
// tenant — does not silently take it over. See docs/ownership.md.
package ownership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// ExtensionName is the open extension holding the marker.
const ExtensionName = "com.dirsync.owner"

// CodeOwnedElsewhere is the per-item error code of a refused takeover.
const CodeOwnedElsewhere = "OWNED_BY_OTHER_INTEGRATION"

// Marker names who manages a remote object.
type Marker struct {
	Deployment      string
	OrganizationID  string
	IntegrationID   string
	IntegrationName string
}

func (m Marker) props(now time.Time) map[string]any {
	return map[string]any{"deployment": m.Deployment, "organizationId": m.OrganizationID,
		"integrationId": m.IntegrationID, "integrationName": m.IntegrationName,
		"markedAt": now.UTC().Format(time.RFC3339)}
}

func markerOf(props map[string]any) Marker {
	s := func(k string) string { v, _ := props[k].(string); return v }
	return Marker{Deployment: s("deployment"), OrganizationID: s("organizationId"),
		IntegrationID: s("integrationId"), IntegrationName: s("integrationName")}
}

// Same: m and o name the same integration of the same deployment.
func (m Marker) Same(o Marker) bool {
	return m.Deployment == o.Deployment && m.IntegrationID == o.IntegrationID
}

func (m Marker) String() string {
	return fmt.Sprintf("integration %q (%s) of organization %s in dirsync deployment %q",
		m.IntegrationName, m.IntegrationID, m.OrganizationID, m.Deployment)
}

// OwnedError: the object carries another owner's marker and the caller did
// not force the takeover.
type OwnedError struct {
	Collection, ID string
	Owner          Marker
}

func (e *OwnedError) Error() string {
	what := "remote user"
	if e.Collection == "groups" {
		what = "remote group"
	}
	return fmt.Sprintf("the %s %s is managed by %s; bind with force: true to take it over", what, e.ID, e.Owner)
}

// IsOwned reports a refused takeover.
func IsOwned(err error) (*OwnedError, bool) {
	var e *OwnedError
	ok := errors.As(err, &e)
	return e, ok
}

// Mark puts ours on an object dirsync just created: nobody else can have
// marked it, so it is a plain create (an existing marker — our own earlier
// attempt whose answer was lost — is overwritten).
func Mark(ctx context.Context, gc *msgraph.Client, collection, id string, ours Marker, now time.Time) error {
	err := gc.CreateExtension(ctx, collection, id, ExtensionName, ours.props(now))
	if msgraph.IsNameExists(err) {
		return gc.UpdateExtension(ctx, collection, id, ExtensionName, ours.props(now))
	}
	return err
}

// Claim is a takeover's check: an object without a marker, or with ours,
// is marked as ours; one marked by another integration or deployment is
// refused with an *OwnedError unless force, in which case it is re-marked
// as ours. Nothing is written when the check refuses.
func Claim(ctx context.Context, gc *msgraph.Client, collection, id string, ours Marker, force bool, now time.Time) (previous *Marker, err error) {
	cur, err := gc.GetExtension(ctx, collection, id, ExtensionName)
	switch {
	case msgraph.IsNotFound(err):
		err = gc.CreateExtension(ctx, collection, id, ExtensionName, ours.props(now))
		if msgraph.IsNameExists(err) {
			// Marked between our read and write: judge the new marker.
			return Claim(ctx, gc, collection, id, ours, force, now)
		}
		return nil, err
	case err != nil:
		return nil, err
	}
	owner := markerOf(cur)
	if !owner.Same(ours) && !force {
		return &owner, &OwnedError{Collection: collection, ID: id, Owner: owner}
	}
	if err := gc.UpdateExtension(ctx, collection, id, ExtensionName, ours.props(now)); err != nil {
		return &owner, err
	}
	return &owner, nil
}

// Release removes the marker if it is ours (an object another integration
// claimed since keeps that one's). A missing marker is no error.
func Release(ctx context.Context, gc *msgraph.Client, collection, id string, ours Marker) error {
	cur, err := gc.GetExtension(ctx, collection, id, ExtensionName)
	if msgraph.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !markerOf(cur).Same(ours) {
		return nil
	}
	err = gc.DeleteExtension(ctx, collection, id, ExtensionName)
	if msgraph.IsNotFound(err) {
		return nil
	}
	return err
}

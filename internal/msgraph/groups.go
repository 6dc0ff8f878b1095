package msgraph

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// maxBindPerPatch is Graph's limit of members@odata.bind URLs per PATCH.
const maxBindPerPatch = 20

// CreateGroup creates a security group (I8: the only kind dirsync manages).
// https://learn.microsoft.com/graph/api/group-post-groups?view=graph-rest-1.0
func (c *Client) CreateGroup(ctx context.Context, g NewSecurityGroup) (Group, error) {
	body := map[string]any{
		"displayName": g.DisplayName, "mailNickname": g.MailNickname,
		"mailEnabled": false, "securityEnabled": true, "groupTypes": []string{},
	}
	if g.Description != "" {
		body["description"] = g.Description
	}
	out, err := roundtrip[Group](ctx, c, call{method: http.MethodPost, path: "/groups", body: body})
	if err == nil {
		c.markFresh(out.ID)
	}
	return out, err
}

// GetGroup reads one group.
// https://learn.microsoft.com/graph/api/group-get?view=graph-rest-1.0
func (c *Client) GetGroup(ctx context.Context, id string, sel ...string) (Group, error) {
	return roundtrip[Group](ctx, c, call{method: http.MethodGet, path: "/groups/" + seg(id),
		query: selectQuery(sel), fresh: c.isFresh(id)})
}

// FindGroupsByDisplayName returns every group with exactly this display name;
// names are not unique in Entra, so G2 needs all of them.
// https://learn.microsoft.com/graph/api/group-list?view=graph-rest-1.0
func (c *Client) FindGroupsByDisplayName(ctx context.Context, name string) ([]Group, error) {
	return c.ListGroups(ListOptions{Filter: Eq("displayName", name), Top: 999}).Collect(ctx)
}

// ListGroups pages through groups.
// https://learn.microsoft.com/graph/api/group-list?view=graph-rest-1.0
func (c *Client) ListGroups(opts ListOptions) *Pager[Group] {
	return newPager[Group](c, call{method: http.MethodGet, path: "/groups", query: opts.query(), header: opts.header()})
}

// UpdateGroup PATCHes the set fields of g.
// https://learn.microsoft.com/graph/api/group-update?view=graph-rest-1.0
func (c *Client) UpdateGroup(ctx context.Context, id string, g GroupFields) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPatch, path: "/groups/" + seg(id),
		body: g, fresh: c.isFresh(id)})
	return err
}

// DeleteGroup deletes a group.
// https://learn.microsoft.com/graph/api/group-delete?view=graph-rest-1.0
func (c *Client) DeleteGroup(ctx context.Context, id string) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodDelete, path: "/groups/" + seg(id),
		fresh: c.isFresh(id)})
	if err == nil {
		c.forget(id)
	}
	return err
}

// ListGroupMembers pages through a group's direct members.
// https://learn.microsoft.com/graph/api/group-list-members?view=graph-rest-1.0
func (c *Client) ListGroupMembers(groupID string, opts ListOptions) *Pager[DirectoryObject] {
	return newPager[DirectoryObject](c, call{method: http.MethodGet, path: "/groups/" + seg(groupID) + "/members",
		query: opts.query(), header: opts.header(), fresh: c.isFresh(groupID)})
}

func (c *Client) objectRef(id string) string {
	return c.cfg.GraphBaseURL + "/directoryObjects/" + seg(id)
}

// AddGroupMember adds one member. An existing member is an error
// (IsMemberAlreadyPresent); callers converging on a state may ignore it.
// https://learn.microsoft.com/graph/api/group-post-members?view=graph-rest-1.0
func (c *Client) AddGroupMember(ctx context.Context, groupID, memberID string) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPost, path: "/groups/" + seg(groupID) + "/members/$ref",
		body: map[string]string{"@odata.id": c.objectRef(memberID)}, fresh: c.isFresh(groupID, memberID)})
	return err
}

// AddGroupMembers adds many members with members@odata.bind, 20 per PATCH.
// One existing or unknown member fails a whole PATCH, so such a chunk is redone
// one member at a time: already-present members count as success (the call
// converges), and each member that still fails is reported as a *MemberError
// (errors.Join of them) while the other members are added. Any other failure
// (throttling beyond the policy, 403, unknown group) stops the call.
// https://learn.microsoft.com/graph/api/group-update?view=graph-rest-1.0#example-2-add-multiple-members-to-a-group-in-a-single-request
func (c *Client) AddGroupMembers(ctx context.Context, groupID string, memberIDs []string) error {
	// A repeated id inside one PATCH would fail it as "already exists".
	seen := make(map[string]bool, len(memberIDs))
	memberIDs = slices.DeleteFunc(slices.Clone(memberIDs), func(id string) bool {
		dup := seen[strings.ToLower(id)]
		seen[strings.ToLower(id)] = true
		return dup
	})
	var memberErrs []error
	for chunk := range slices.Chunk(memberIDs, maxBindPerPatch) {
		refs := make([]string, len(chunk))
		for i, id := range chunk {
			refs[i] = c.objectRef(id)
		}
		_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPatch, path: "/groups/" + seg(groupID),
			body: map[string][]string{"members@odata.bind": refs}, fresh: c.isFresh(append([]string{groupID}, chunk...)...)})
		if err == nil {
			continue
		}
		if !IsMemberAlreadyPresent(err) && !IsNotFound(err) {
			return err
		}
		for _, id := range chunk {
			err := c.AddGroupMember(ctx, groupID, id)
			switch {
			case err == nil, IsMemberAlreadyPresent(err):
			case IsNotFound(err):
				// Graph's 404 does not say whether the group or the member is
				// missing; ask once so a missing group is not blamed on members.
				if _, gerr := c.GetGroup(ctx, groupID, "id"); gerr != nil {
					return gerr
				}
				memberErrs = append(memberErrs, &MemberError{MemberID: id, Err: err})
			default:
				return err
			}
		}
	}
	return errors.Join(memberErrs...)
}

// MemberError is the failure of one member in AddGroupMembers.
type MemberError struct {
	MemberID string
	Err      error
}

func (e *MemberError) Error() string { return "member " + e.MemberID + ": " + e.Err.Error() }
func (e *MemberError) Unwrap() error { return e.Err }

// RemoveGroupMember removes one member; an absent member is an error
// (IsMemberAbsent).
// https://learn.microsoft.com/graph/api/group-delete-members?view=graph-rest-1.0
func (c *Client) RemoveGroupMember(ctx context.Context, groupID, memberID string) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodDelete,
		path: "/groups/" + seg(groupID) + "/members/" + seg(memberID) + "/$ref", fresh: c.isFresh(groupID, memberID)})
	return err
}

var errNoOrganization = errors.New("msgraph: GET /organization returned no tenant")

// ListDomains lists the tenant's domains, verified or not (I2, D5).
// https://learn.microsoft.com/graph/api/domain-list?view=graph-rest-1.0
func (c *Client) ListDomains(ctx context.Context) ([]Domain, error) {
	return newPager[Domain](c, call{method: http.MethodGet, path: "/domains"}).Collect(ctx)
}

// GetOrganization reads the tenant's organization object.
// https://learn.microsoft.com/graph/api/organization-get?view=graph-rest-1.0
func (c *Client) GetOrganization(ctx context.Context) (Organization, error) {
	orgs, err := newPager[Organization](c, call{method: http.MethodGet, path: "/organization"}).Collect(ctx)
	if err != nil {
		return Organization{}, err
	}
	if len(orgs) == 0 {
		return Organization{}, errNoOrganization
	}
	return orgs[0], nil
}

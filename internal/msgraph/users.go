package msgraph

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// GetUser reads one user by object id or userPrincipalName.
// https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0
func (c *Client) GetUser(ctx context.Context, idOrUPN string, sel ...string) (User, error) {
	return roundtrip[User](ctx, c, call{method: http.MethodGet, path: "/users/" + seg(idOrUPN),
		query: selectQuery(sel), fresh: c.isFresh(idOrUPN)})
}

// GetUserProperties reads the selected properties of one user exactly as Graph
// sent them (nested objects and unknown properties included), for comparing
// with what was last written.
// https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0
func (c *Client) GetUserProperties(ctx context.Context, id string, sel ...string) (map[string]any, error) {
	return roundtrip[map[string]any](ctx, c, call{method: http.MethodGet, path: "/users/" + seg(id),
		query: selectQuery(sel), fresh: c.isFresh(id)})
}

// FindUserByUPN looks a user up with $filter (which, unlike a GET by UPN, copes
// with UPNs starting with '$' and with '#'); nil without error when none exists.
// https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0
func (c *Client) FindUserByUPN(ctx context.Context, upn string, sel ...string) (*User, error) {
	users, _, err := c.ListUsers(ListOptions{Filter: Eq("userPrincipalName", upn), Select: sel, Top: 2}).NextPage(ctx)
	if err != nil || len(users) == 0 {
		return nil, err
	}
	return &users[0], nil
}

// FindUsersByUPNs looks many users up at once with
// `$filter=userPrincipalName in (…)`, MaxInValues per request. The answer maps
// each lower-cased UPN found to its user; UPNs nobody holds are absent.
// https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0
func (c *Client) FindUsersByUPNs(ctx context.Context, upns []string, sel ...string) (map[string]User, error) {
	out := make(map[string]User, len(upns))
	for start := 0; start < len(upns); start += MaxInValues {
		chunk := upns[start:min(start+MaxInValues, len(upns))]
		users, err := c.ListUsers(ListOptions{Filter: In("userPrincipalName", chunk), Select: sel, Top: 999}).Collect(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			out[strings.ToLower(u.UserPrincipalName)] = u
		}
	}
	return out, nil
}

// ListUsers pages through users.
// https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0
func (c *Client) ListUsers(opts ListOptions) *Pager[User] {
	return newPager[User](c, call{method: http.MethodGet, path: "/users", query: opts.query(), header: opts.header()})
}

// CountUsers answers GET /users/$count (advanced mode), optionally filtered.
// https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0#example-3-get-only-a-count-of-users
func (c *Client) CountUsers(ctx context.Context, filter string) (int, error) {
	q := url.Values{}
	if filter != "" {
		q.Set("$filter", filter)
	}
	resp, err := c.request(ctx, call{method: http.MethodGet, path: "/users/$count", query: q,
		header: http.Header{consistencyLevelHeader: {consistencyLevelEventual}, "Accept": {"text/plain"}}})
	if err != nil {
		return 0, err
	}
	// Graph answers text/plain, sometimes with a UTF-8 BOM.
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(resp.body), "\ufeff")))
	if err != nil {
		return 0, fmt.Errorf("msgraph: users/$count answer: %w", err)
	}
	return n, nil
}

// CreateUser creates a user; accountEnabled, displayName, mailNickname,
// userPrincipalName and passwordProfile are required by Graph. The new id is
// remembered so the next calls about it retry replication-delay 404s.
// https://learn.microsoft.com/graph/api/user-post-users?view=graph-rest-1.0
func (c *Client) CreateUser(ctx context.Context, u UserFields) (User, error) {
	out, err := roundtrip[User](ctx, c, call{method: http.MethodPost, path: "/users", body: u})
	if err == nil {
		c.markFresh(out.ID)
		c.markFresh(out.UserPrincipalName)
	}
	return out, err
}

// UpdateUser PATCHes the set fields of u.
// https://learn.microsoft.com/graph/api/user-update?view=graph-rest-1.0
func (c *Client) UpdateUser(ctx context.Context, idOrUPN string, u UserFields) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPatch, path: "/users/" + seg(idOrUPN),
		body: u, fresh: c.isFresh(idOrUPN)})
	return err
}

// DeleteUser deletes a user (it goes to the recycle bin for 30 days). dirsync
// deprovisions by disabling instead; this exists for tests and cleanup.
// https://learn.microsoft.com/graph/api/user-delete?view=graph-rest-1.0
func (c *Client) DeleteUser(ctx context.Context, idOrUPN string) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodDelete, path: "/users/" + seg(idOrUPN),
		fresh: c.isFresh(idOrUPN)})
	if err == nil {
		c.forget(idOrUPN)
	}
	return err
}

func selectQuery(sel []string) url.Values {
	if len(sel) == 0 {
		return nil
	}
	return url.Values{"$select": {strings.Join(sel, ",")}}
}

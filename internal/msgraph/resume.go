package msgraph

import (
	"net/http"
	"net/url"
)

// ListUsersRaw pages through users as JSON objects, for callers that read
// properties by name (an import copies whatever the mapping table names,
// nested ones such as employeeOrgData included).
// https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0
func (c *Client) ListUsersRaw(opts ListOptions) *Pager[map[string]any] {
	return newPager[map[string]any](c, call{method: http.MethodGet, path: "/users", query: opts.query(), header: opts.header()})
}

// NextLink is the @odata.nextLink the next NextPage call follows: empty before
// the first page and after the last. A caller that stores it (a checkpoint) can
// continue later with ResumeAt on a pager built with the same options.
func (p *Pager[T]) NextLink() string { return p.next }

// Done reports whether the last page was read.
func (p *Pager[T]) Done() bool { return p.done }

// ResumeAt makes the next NextPage follow link (a NextLink saved earlier)
// instead of starting over. The link is checked against the Graph host like
// every other link before the token is sent.
func (p *Pager[T]) ResumeAt(link string) {
	p.next, p.done = link, false
}

// SkipToken extracts the opaque $skiptoken of an @odata.nextLink; "" when it
// has none.
func SkipToken(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	return u.Query().Get("$skiptoken")
}

package importer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/msgraph"
)

// Listing limits of remoteUsers.
const (
	// DefaultFirst is the page size when the query gives none.
	DefaultFirst = 50
	// MaxSearch bounds the search text.
	MaxSearch = 100
	// MaxScanRequests bounds the Graph requests of one remoteUsers call when
	// inDirectory filters on our side: at most this many pages of 999 remote
	// users (about 5,000) are read per call. A call that hits the bound returns
	// what it found with hasNextPage and an endCursor to continue from.
	MaxScanRequests = 5
)

// RemoteUser is a remote user as remoteUsers lists it (GraphQL RemoteUser).
type RemoteUser struct {
	RemoteID          pulid.ID
	UserPrincipalName string
	Mail              *string
	MailNickname      *string
	DisplayName       *string
	GivenName         *string
	Surname           *string
	JobTitle          *string
	Department        *string
	AccountEnabled    bool
	InDirectory       bool
	DirectoryUser     *ent.User
}

// RemoteUserEdge is an edge of RemoteUserConnection.
type RemoteUserEdge struct {
	Node   *RemoteUser
	Cursor ent.Cursor
}

// RemoteUserConnection is a page of remote users. TotalCount is Graph's count
// of the matching active users; nil when inDirectory filters (Graph cannot
// count what only the directory knows).
type RemoteUserConnection struct {
	Edges      []*RemoteUserEdge
	PageInfo   ent.PageInfo
	TotalCount *int
}

// RemoteUserWhereInput filters remoteUsers.
type RemoteUserWhereInput struct {
	InDirectory *bool
	Search      *string
}

var remoteSelect = []string{"id", "userPrincipalName", "mail", "mailNickname", "displayName", "givenName",
	"surname", "jobTitle", "department", "accountEnabled"}

// position is what a remoteUsers cursor holds: the Graph page ($skiptoken of
// an @odata.nextLink; "" = the first page) and the index in it to continue at,
// bound to the query it came from.
type position struct {
	V     int    `json:"v"`
	Query string `json:"q"`
	Token string `json:"t,omitempty"`
	Skip  int    `json:"s,omitempty"`
	End   bool   `json:"e,omitempty"`
}

const cursorVersion = 1

func queryKey(integrationID pulid.ID, search string, inDir *bool) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%v", integrationID, search, inDir != nil && *inDir)
	if inDir == nil {
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%x", h.Sum64())
}

func (p position) cursor() ent.Cursor {
	b, _ := json.Marshal(p)
	return ent.Cursor{ID: pulid.ID(base64.RawURLEncoding.EncodeToString(b))}
}

var errBadCursor = gqlerr.BadInput("after", "the cursor is not a remoteUsers cursor of this query")

func decodeCursor(c *ent.Cursor, key string) (position, error) {
	if c == nil {
		return position{V: cursorVersion, Query: key}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c.ID))
	var p position
	if err != nil || c.Value != nil || json.Unmarshal(b, &p) != nil || p.V != cursorVersion || p.Query != key ||
		p.Skip < 0 || p.Skip >= msgraphMaxTop {
		return position{}, errBadCursor
	}
	return p, nil
}

const msgraphMaxTop = 999

// searchExpr is Graph's $search for a text: a word-prefix match on the names,
// the UPN or the mail. Quotes and backslashes cannot be escaped in $search
// and are dropped.
func searchExpr(text string) string {
	text = strings.NewReplacer(`"`, " ", `\`, " ").Replace(text)
	text = strings.Join(strings.Fields(text), " ")
	if text == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{"displayName", "givenName", "surname", "userPrincipalName", "mail"} {
		parts = append(parts, `"`+p+":"+text+`"`)
	}
	return strings.Join(parts, " OR ")
}

// RemoteUsers lists the tenant's active users (M1). It reads Microsoft Graph
// from the API process: a read through the integration's throttle-aware
// client, never a write. search runs in Graph ($search); inDirectory is
// decided here, so a filtered call may scan several Graph pages (at most
// MaxScanRequests).
func (s *Service) RemoteUsers(ctx context.Context, integrationID pulid.ID, first *int, after *ent.Cursor, where *RemoteUserWhereInput) (*RemoteUserConnection, error) {
	n := DefaultFirst
	if first != nil {
		n = *first
	}
	if n < 0 {
		return nil, gqlerr.BadInput("first", "first must not be negative")
	}
	var inDir *bool
	search := ""
	if where != nil {
		inDir = where.InDirectory
		if where.Search != nil {
			search = strings.TrimSpace(*where.Search)
			if len([]rune(search)) > MaxSearch {
				return nil, gqlerr.BadInput("search", "search must be at most %d characters", MaxSearch)
			}
		}
	}
	key := queryKey(integrationID, search, inDir)
	pos, err := decodeCursor(after, key)
	if err != nil {
		return nil, err
	}
	in, err := authorized(ctx, s.reader(ctx), integrationID)
	if err != nil {
		return nil, err
	}
	if s.tenants == nil {
		return nil, errors.New("importer: no tenant connector configured")
	}
	client, err := s.tenants.Client(in)
	if err != nil {
		return nil, err
	}
	conn := &RemoteUserConnection{Edges: []*RemoteUserEdge{}}
	conn.PageInfo.HasPreviousPage = after != nil
	if pos.End {
		// After the last user: nothing to read, and no count without a read.
		return conn, nil
	}
	opts := msgraph.ListOptions{Select: remoteSelect, Filter: "accountEnabled eq true", Advanced: true,
		Search: searchExpr(search)}
	for req := 0; ; req++ {
		if inDir != nil && req == MaxScanRequests {
			// Bound reached: hand the client a cursor to go on from.
			c := pos.cursor()
			conn.PageInfo.HasNextPage, conn.PageInfo.EndCursor = true, &c
			return conn, nil
		}
		need := n - len(conn.Edges)
		opts.Top = min(pos.Skip+max(need, 1), msgraphMaxTop)
		if inDir != nil {
			opts.Top = msgraphMaxTop
		}
		opts.SkipToken = pos.Token
		pager := client.ListUsersRaw(opts)
		users, _, err := pager.NextPage(ctx)
		if err != nil {
			return nil, graphReadError(err, pos.Token != "")
		}
		if c := pager.Count(); c != nil && inDir == nil && conn.TotalCount == nil {
			conn.TotalCount = c
		}
		next := msgraph.SkipToken(pager.NextLink())
		if pos.Skip > len(users) {
			return nil, errBadCursor
		}
		page, err := s.annotate(ctx, in.ID, users[pos.Skip:])
		if err != nil {
			return nil, err
		}
		for i, ru := range page {
			idx := pos.Skip + i
			if len(conn.Edges) == n {
				conn.PageInfo.HasNextPage = true
				return conn.finish(), nil
			}
			if inDir != nil && ru.InDirectory != *inDir {
				continue
			}
			after := position{V: cursorVersion, Query: key, Token: pos.Token, Skip: idx + 1}
			if idx+1 == len(users) {
				after = position{V: cursorVersion, Query: key, Token: next, End: next == ""}
			}
			conn.Edges = append(conn.Edges, &RemoteUserEdge{Node: ru, Cursor: after.cursor()})
		}
		if next == "" {
			return conn.finish(), nil
		}
		pos = position{V: cursorVersion, Query: key, Token: next}
		if len(conn.Edges) == n {
			conn.PageInfo.HasNextPage = true
			return conn.finish(), nil
		}
	}
}

func (c *RemoteUserConnection) finish() *RemoteUserConnection {
	if len(c.Edges) > 0 {
		c.PageInfo.StartCursor = &c.Edges[0].Cursor
		c.PageInfo.EndCursor = &c.Edges[len(c.Edges)-1].Cursor
	}
	return c
}

// graphReadError: a refused continuation token is the client's cursor at
// fault (expired or forged); anything else is the tenant being unavailable.
func graphReadError(err error, withToken bool) error {
	var ge *msgraph.Error
	if errors.As(err, &ge) && withToken && (ge.Status == http.StatusBadRequest || ge.Status == http.StatusGone) {
		return gqlerr.BadInput("after", "the cursor has expired or is not valid: start again without after")
	}
	if errors.As(err, &ge) && (ge.Status == http.StatusForbidden || ge.Status == http.StatusUnauthorized) {
		return &gqlerr.Error{Code: gqlerr.FailedPrecondition, Field: "integrationID",
			Message: "the tenant refused to list its users: check the app's permissions (User.Read.All)", Err: err}
	}
	return &gqlerr.Error{Code: gqlerr.Unavailable, Message: "could not read the tenant's users; retry later", Err: err}
}

// annotate turns Graph users into RemoteUsers with inDirectory: a directory
// user holds the email (M3) or is linked to the remote id in this integration.
func (s *Service) annotate(ctx context.Context, integrationID pulid.ID, users []map[string]any) ([]*RemoteUser, error) {
	rs := make([]Remote, len(users))
	ids := make([]string, len(users))
	emails := make([]string, len(users))
	for i, u := range users {
		rs[i] = FromGraph(u)
		ids[i] = rs[i].ID
		emails[i] = rules.Fold(Email(rs[i]))
	}
	c := s.reader(ctx)
	byEmail := map[string]*ent.User{}
	if len(users) > 0 {
		us, err := c.User.Query().Where(user.EmailFoldedIn(emails...)).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			byEmail[u.EmailFolded] = u
		}
	}
	links, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(integrationID), remotelink.RemoteIDIn(ids...),
		remotelink.UserIDNotNil()).WithUser().All(ctx)
	if err != nil {
		return nil, err
	}
	byRemote := map[string]*ent.User{}
	for _, l := range links {
		if l.Edges.User != nil {
			byRemote[strings.ToLower(l.RemoteID)] = l.Edges.User
		}
	}
	out := make([]*RemoteUser, len(rs))
	for i, r := range rs {
		ru := &RemoteUser{RemoteID: pulid.ID(r.ID), UserPrincipalName: r.UPN, AccountEnabled: r.Enabled,
			Mail: str(r.Raw, "mail"), MailNickname: str(r.Raw, "mailNickname"), DisplayName: str(r.Raw, "displayName"),
			GivenName: str(r.Raw, "givenName"), Surname: str(r.Raw, "surname"), JobTitle: str(r.Raw, "jobTitle"),
			Department: str(r.Raw, "department")}
		ru.DirectoryUser = byRemote[strings.ToLower(r.ID)]
		if ru.DirectoryUser == nil {
			ru.DirectoryUser = byEmail[emails[i]]
		}
		ru.InDirectory = ru.DirectoryUser != nil
		out[i] = ru
	}
	return out, nil
}

func str(m map[string]any, k string) *string {
	v, _ := m[k].(string)
	return nonEmpty(v)
}

// reader is the request's transaction when there is one.
func (s *Service) reader(ctx context.Context) *ent.Client {
	if tx := ent.TxFromContext(ctx); tx != nil {
		return tx.Client()
	}
	return s.client
}

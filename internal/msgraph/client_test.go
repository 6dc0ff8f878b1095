package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestLiteralEscapesQuotes(t *testing.T) {
	assert.Equal(t, `'plain@x.com'`, Literal("plain@x.com"))
	assert.Equal(t, `'o''brien@x.com'`, Literal("o'brien@x.com"))
	assert.Equal(t, `''''''`, Literal("''"))
	assert.Equal(t, `userPrincipalName eq 'a'' or 1 eq 1'`, Eq("userPrincipalName", "a' or 1 eq 1"))
}

// The $filter arrives at Graph as one escaped literal, "$" stays literal in the
// option name and spaces are %20 (not "+").
func TestFindUserByUPNSendsEscapedFilter(t *testing.T) {
	var raw, filter string
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		raw, filter = r.URL.RawQuery, r.URL.Query().Get("$filter")
		writeJSON(w, 200, map[string]any{"value": []any{}})
	})
	u, err := c.FindUserByUPN(context.Background(), "o'brien+tag#1@x.com")
	require.NoError(t, err)
	assert.Nil(t, u)
	assert.Equal(t, `userPrincipalName eq 'o''brien+tag#1@x.com'`, filter)
	assert.Contains(t, raw, "$filter=")
	assert.NotContains(t, raw, "+")
	assert.Contains(t, raw, "%20eq%20")
}

func TestPathSegmentsAreEscaped(t *testing.T) {
	var path string
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		writeJSON(w, 200, map[string]any{"id": "x"})
	})
	_, err := c.GetUser(context.Background(), "we#ird/upn@x.com")
	require.NoError(t, err)
	assert.Equal(t, "/v1.0/users/we%23ird%2Fupn@x.com", path)
}

// STYLE.md: a nextLink to another host must not receive our bearer token.
func TestForeignNextLinkIsRefusedBeforeSending(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilHits.Add(1) }))
	defer evil.Close()
	for _, link := range []string{
		evil.URL + "/v1.0/users?$skiptoken=x",
		"", // placeholder for same host but other base path, filled below
	} {
		var graphHits atomic.Int32
		f, c, _ := newFake(t, nil)
		if link == "" {
			link = f.srv.URL + "/beta/users?$skiptoken=x"
		}
		f.graph = func(w http.ResponseWriter, r *http.Request) {
			graphHits.Add(1)
			writeJSON(w, 200, map[string]any{"value": []map[string]string{{"id": "1"}}, "@odata.nextLink": link})
		}
		p := c.ListUsers(ListOptions{})
		items, ok, err := p.NextPage(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
		require.Len(t, items, 1)
		_, _, err = p.NextPage(context.Background())
		require.ErrorIs(t, err, ErrForeignLink)
		assert.EqualValues(t, 1, graphHits.Load())
	}
	assert.Zero(t, evilHits.Load())

	// A persisted deltaLink is checked the same way before the first call.
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) { t.Error("must not be called") })
	_, _, _, err := c.UsersDelta(DeltaOptions{DeltaLink: evil.URL + "/v1.0/users/delta?$deltatoken=x"}).Collect(context.Background())
	require.ErrorIs(t, err, ErrForeignLink)
	assert.Zero(t, evilHits.Load())
}

func TestPagerFollowsNextLinkUnchanged(t *testing.T) {
	var seen []string
	f, c, _ := newFake(t, nil)
	f.graph = func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RawQuery)
		switch r.URL.Query().Get("$skiptoken") {
		case "":
			writeJSON(w, 200, map[string]any{"value": []map[string]string{{"id": "1"}, {"id": "2"}},
				"@odata.nextLink": f.srv.URL + "/v1.0/users?$top=2&$skiptoken=opaque%2Bv"})
		case "opaque+v":
			writeJSON(w, 200, map[string]any{"value": []map[string]string{{"id": "3"}}})
		default:
			t.Errorf("unexpected query %q", r.URL.RawQuery)
		}
	}
	got, err := c.ListUsers(ListOptions{Top: 2, Select: []string{"id", "userPrincipalName"}}).Collect(context.Background())
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "3", got[2].ID)
	assert.Equal(t, "$top=2&$skiptoken=opaque%2Bv", seen[1])
}

func TestUserFieldsSendOnlySetFieldsAndNulls(t *testing.T) {
	b, err := json.Marshal(UserFields{JobTitle: Ptr("Chef"), AccountEnabled: Ptr(false), BusinessPhones: &[]string{}, Null: []string{"mobilePhone"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"jobTitle":"Chef","accountEnabled":false,"businessPhones":[],"mobilePhone":null}`, string(b))
	b, err = json.Marshal(GroupFields{DisplayName: Ptr("G")})
	require.NoError(t, err)
	assert.JSONEq(t, `{"displayName":"G"}`, string(b))
}

func TestMergeGroupDeltasKeepsLastWordPerMember(t *testing.T) {
	got := MergeGroupDeltas([]Group{
		{ID: "g1", DisplayName: "One", MembersDelta: []MemberDelta{{ID: "a"}, {ID: "b"}}},
		{ID: "g2", DisplayName: "Two"},
		{ID: "g1", MembersDelta: []MemberDelta{{ID: "a", Removed: &Removed{Reason: "deleted"}}, {ID: "c"}}},
	})
	require.Len(t, got, 2)
	assert.Equal(t, "One", got[0].DisplayName)
	assert.Equal(t, []MemberDelta{{ID: "b"}, {ID: "a", Removed: &Removed{Reason: "deleted"}}, {ID: "c"}}, got[0].MembersDelta)
}

func TestDeltaResetIsTyped(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{{410, "resyncRequired"}, {400, "syncStateNotFound"}} {
		f, c, _ := newFake(t, nil)
		f.graph = func(w http.ResponseWriter, r *http.Request) {
			writeGraphError(w, tc.status, tc.code, "token expired")
		}
		_, _, _, err := c.UsersDelta(DeltaOptions{DeltaLink: f.srv.URL + "/v1.0/users/delta?$deltatoken=old"}).Collect(context.Background())
		require.ErrorIs(t, err, ErrDeltaReset, "%d %s", tc.status, tc.code)
	}
}

func TestAddGroupMembersChunksAndFallsBackOnDuplicate(t *testing.T) {
	var patches [][]string
	var refs []string
	f, c, _ := newFake(t, nil)
	f.graph = func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch:
			var b map[string][]string
			_ = json.NewDecoder(r.Body).Decode(&b)
			patches = append(patches, b["members@odata.bind"])
			if len(patches) == 2 { // second chunk holds an existing member
				writeGraphError(w, 400, CodeBadRequest, "One or more added object references already exist for the following modified properties: 'members'.")
				return
			}
			w.WriteHeader(204)
		case strings.HasSuffix(r.URL.Path, "/members/$ref"):
			var b map[string]string
			_ = json.NewDecoder(r.Body).Decode(&b)
			refs = append(refs, b["@odata.id"])
			if strings.HasSuffix(b["@odata.id"], "/m21") {
				writeGraphError(w, 400, CodeBadRequest, "One or more added object references already exist for the following modified properties: 'members'.")
				return
			}
			w.WriteHeader(204)
		}
	}
	var ids []string
	for i := range 25 {
		ids = append(ids, "m"+strconv.Itoa(i))
	}
	ids = append(ids, "m3") // duplicate in input must not fail a chunk
	require.NoError(t, c.AddGroupMembers(context.Background(), "g", ids))
	require.Len(t, patches, 2)
	assert.Len(t, patches[0], 20)
	assert.Len(t, patches[1], 5)
	assert.Equal(t, f.srv.URL+"/v1.0/directoryObjects/m0", patches[0][0])
	assert.Len(t, refs, 5, "failed chunk redone one by one")
}

// The batched lookup splits at Graph's 15 alternatives per filter, escapes
// each value and maps the answers by lower-cased UPN (issue 12).
func TestFindUsersByUPNsChunksAtGraphsLimit(t *testing.T) {
	var mu sync.Mutex
	var filters []string
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		f := r.URL.Query().Get("$filter")
		mu.Lock()
		filters = append(filters, f)
		mu.Unlock()
		var value []any
		if strings.Contains(f, "'o''brien@x.com'") {
			value = append(value, map[string]any{"id": "1", "userPrincipalName": "O'Brien@x.com"})
		}
		writeJSON(w, 200, map[string]any{"value": value})
	})
	upns := []string{"o'brien@x.com"}
	for i := range 19 {
		upns = append(upns, fmt.Sprintf("u%d@x.com", i))
	}
	found, err := c.FindUsersByUPNs(context.Background(), upns, "id", "userPrincipalName")
	require.NoError(t, err)
	require.Equal(t, map[string]User{"o'brien@x.com": {ID: "1", UserPrincipalName: "O'Brien@x.com"}}, found)
	require.Len(t, filters, 2)
	assert.Equal(t, 15, strings.Count(filters[0], "@x.com'"))
	assert.Equal(t, 5, strings.Count(filters[1], "@x.com'"))
	assert.True(t, strings.HasPrefix(filters[0], "userPrincipalName in ('o''brien@x.com','u0@x.com',"), filters[0])
}

type feedbackLimiter struct {
	fakeLimiter
	answers []int
}

func (l *feedbackLimiter) Answered(_ context.Context, writes, status int, _ http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, writes*1000+status)
}

// An adaptive limiter hears about every attempt it let out, 429s included.
func TestLimiterFeedbackOncePerAttempt(t *testing.T) {
	var n atomic.Int32
	f, _, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeGraphError(w, 429, "TooManyRequests", "Please retry again later.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	lim := &feedbackLimiter{}
	c, err := New(Config{TenantID: "tenant-1", ClientID: "client-1", ClientSecret: "s3cr3t-value",
		LoginBaseURL: f.srv.URL, GraphBaseURL: f.srv.URL + "/v1.0", HTTPClient: f.srv.Client(), Sleep: sl.Sleep,
		Limiter: lim, Retry: RetryPolicy{Jitter: func() float64 { return 0 }}})
	require.NoError(t, err)
	require.NoError(t, c.UpdateUser(context.Background(), "id-1", UserFields{JobTitle: Ptr("x")}))
	assert.Equal(t, []int{1429, 1204}, lim.answers)
	assert.Equal(t, 2, lim.waits)
	assert.Equal(t, []time.Duration{time.Second}, lim.penalties)
}

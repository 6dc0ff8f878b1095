package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DeltaOptions starts or resumes a delta round.
type DeltaOptions struct {
	// DeltaLink resumes from the @odata.deltaLink persisted after the previous
	// round; empty starts a full round.
	DeltaLink string
	// Select limits properties ($select); for groups include "members" to get
	// members@delta.
	Select []string
	// Latest asks only for a deltaLink marking "now" ($deltatoken=latest), to
	// start tracking without reading the whole directory.
	Latest bool
}

// RemovedObject is an entry with @removed: "deleted" (gone) or "changed"
// (soft-deleted or out of scope, may come back).
type RemovedObject struct {
	ID     string
	Reason string
}

// DeltaPage is one page of a delta round.
type DeltaPage[T any] struct {
	Changed []T
	Removed []RemovedObject
	// DeltaLink is set on the last page only: persist it and pass it as
	// DeltaOptions.DeltaLink next time.
	DeltaLink string
}

// DeltaIterator walks the pages of one delta round.
type DeltaIterator[T any] struct {
	c         *Client
	next      call
	deltaLink string
	done      bool
}

// UsersDelta starts or resumes a users delta round.
// https://learn.microsoft.com/graph/api/user-delta?view=graph-rest-1.0
func (c *Client) UsersDelta(opts DeltaOptions) *DeltaIterator[User] {
	return newDelta[User](c, "/users/delta", opts)
}

// GroupsDelta starts or resumes a groups delta round. A big group's
// members@delta may be spread over several pages; see MergeGroupDeltas.
// https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0
func (c *Client) GroupsDelta(opts DeltaOptions) *DeltaIterator[Group] {
	return newDelta[Group](c, "/groups/delta", opts)
}

// UsersDeltaRaw is UsersDelta with each user as Graph sent it (every
// $select-ed property, nested ones included), for comparing with what we wrote.
func (c *Client) UsersDeltaRaw(opts DeltaOptions) *DeltaIterator[map[string]any] {
	return newDelta[map[string]any](c, "/users/delta", opts)
}

func newDelta[T any](c *Client, path string, opts DeltaOptions) *DeltaIterator[T] {
	if opts.DeltaLink != "" {
		return &DeltaIterator[T]{c: c, next: call{method: http.MethodGet, link: opts.DeltaLink}}
	}
	q := selectQuery(opts.Select)
	if opts.Latest {
		if q == nil {
			q = url.Values{}
		}
		q.Set("$deltatoken", "latest")
	}
	return &DeltaIterator[T]{c: c, next: call{method: http.MethodGet, path: path, query: q}}
}

type deltaProbe struct {
	ID      string   `json:"id"`
	Removed *Removed `json:"@removed"`
}

// Next returns the next page; ok is false after the page that carried the
// deltaLink. An expired or unknown token yields an error matching
// ErrDeltaReset (errors.Is): drop the stored link and start a full round.
func (d *DeltaIterator[T]) Next(ctx context.Context) (pg DeltaPage[T], ok bool, err error) {
	if d.done {
		return pg, false, nil
	}
	raw, err := roundtrip[page[json.RawMessage]](ctx, d.c, d.next)
	if err != nil {
		if ge, isGE := asError(err); isGE && isDeltaReset(ge) {
			return pg, false, fmt.Errorf("%w: %w", ErrDeltaReset, err)
		}
		return pg, false, err
	}
	for _, item := range raw.Value {
		var probe deltaProbe
		if err := json.Unmarshal(item, &probe); err != nil {
			return pg, false, fmt.Errorf("msgraph: decode delta item: %w", err)
		}
		if probe.Removed != nil {
			pg.Removed = append(pg.Removed, RemovedObject{ID: probe.ID, Reason: probe.Removed.Reason})
			continue
		}
		var v T
		if err := json.Unmarshal(item, &v); err != nil {
			return pg, false, fmt.Errorf("msgraph: decode delta item: %w", err)
		}
		pg.Changed = append(pg.Changed, v)
	}
	switch {
	case raw.NextLink != "":
		d.next = call{method: http.MethodGet, link: raw.NextLink}
	case raw.DeltaLink != "":
		d.done, d.deltaLink, pg.DeltaLink = true, raw.DeltaLink, raw.DeltaLink
	default:
		return pg, false, errors.New("msgraph: delta page carries neither nextLink nor deltaLink")
	}
	return pg, true, nil
}

// DeltaLink is the link to persist, known once the last page was read.
func (d *DeltaIterator[T]) DeltaLink() string { return d.deltaLink }

// Collect reads the whole round. Items are returned in page order, replays
// included.
func (d *DeltaIterator[T]) Collect(ctx context.Context) (changed []T, removed []RemovedObject, deltaLink string, err error) {
	for {
		pg, ok, err := d.Next(ctx)
		if err != nil {
			return changed, removed, "", err
		}
		if !ok {
			return changed, removed, d.deltaLink, nil
		}
		changed = append(changed, pg.Changed...)
		removed = append(removed, pg.Removed...)
	}
}

// MergeGroupDeltas folds the replays of one group across pages into one entry:
// later non-empty properties win and members@delta is concatenated with the
// last word per member kept (an add then a removal ends as the removal).
func MergeGroupDeltas(groups []Group) []Group {
	idx := map[string]int{}
	var out []Group
	for _, g := range groups {
		i, seen := idx[g.ID]
		if !seen {
			idx[g.ID] = len(out)
			out = append(out, g)
			continue
		}
		m := &out[i]
		if g.DisplayName != "" {
			m.DisplayName = g.DisplayName
		}
		if g.Description != "" {
			m.Description = g.Description
		}
		if g.MailNickname != "" {
			m.MailNickname = g.MailNickname
		}
		m.MembersDelta = append(m.MembersDelta, g.MembersDelta...)
	}
	for i := range out {
		out[i].MembersDelta = lastPerMember(out[i].MembersDelta)
	}
	return out
}

func lastPerMember(ms []MemberDelta) []MemberDelta {
	if len(ms) < 2 {
		return ms
	}
	last := map[string]int{}
	for i, m := range ms {
		last[strings.ToLower(m.ID)] = i
	}
	out := ms[:0:0]
	for i, m := range ms {
		if last[strings.ToLower(m.ID)] == i {
			out = append(out, m)
		}
	}
	return out
}

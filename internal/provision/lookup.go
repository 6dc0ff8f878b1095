package provision

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// lookupParallel bounds the batched lookups one Graph client has in flight;
// lookups asked for meanwhile queue up and leave together, up to
// msgraph.MaxInValues per request. Under load that is one call for 15 users
// instead of 15; alone, a lookup leaves at once (no timer to wait out).
const lookupParallel = 4

// lookupTimeout bounds one batched lookup: it runs for several reconciles, so
// no single caller's context may cancel it.
const lookupTimeout = 2 * time.Minute

// lookupSelect is what a lookup reads of a user.
var lookupSelect = []string{"id", "userPrincipalName", "accountEnabled"}

// lookups coalesces the UPN lookups (P1) of concurrent reconciles that use the
// same Graph client (one app+tenant) into `userPrincipalName in (…)` requests.
// Each caller still gets only the exact, case-insensitive match of its own UPN.
type lookups struct {
	mu     sync.Mutex
	queues map[*msgraph.Client]*lookupQueue
}

type lookupQueue struct {
	waiting  []*lookupReq
	inFlight int
}

type lookupReq struct {
	upn  string // lower-cased
	done chan lookupRes
}

type lookupRes struct {
	u   *msgraph.User
	err error
}

func newLookups() *lookups { return &lookups{queues: map[*msgraph.Client]*lookupQueue{}} }

// find returns the remote user whose UPN is upn, nil when none.
func (l *lookups) find(ctx context.Context, gc *msgraph.Client, upn string) (*msgraph.User, error) {
	req := &lookupReq{upn: strings.ToLower(upn), done: make(chan lookupRes, 1)}
	l.mu.Lock()
	q := l.queues[gc]
	if q == nil {
		q = &lookupQueue{}
		l.queues[gc] = q
	}
	q.waiting = append(q.waiting, req)
	start := q.inFlight < lookupParallel
	if start {
		q.inFlight++
	}
	l.mu.Unlock()
	if start {
		go l.drain(context.WithoutCancel(ctx), gc, q)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-req.done:
		return res.u, res.err
	}
}

// drain sends the queued lookups in batches until none is left.
func (l *lookups) drain(ctx context.Context, gc *msgraph.Client, q *lookupQueue) {
	for {
		l.mu.Lock()
		n := min(len(q.waiting), msgraph.MaxInValues)
		if n == 0 {
			q.inFlight--
			if q.inFlight == 0 {
				delete(l.queues, gc)
			}
			l.mu.Unlock()
			return
		}
		batch := q.waiting[:n:n]
		q.waiting = q.waiting[n:]
		l.mu.Unlock()

		upns := make([]string, 0, n)
		seen := map[string]bool{}
		for _, r := range batch {
			if !seen[r.upn] {
				seen[r.upn] = true
				upns = append(upns, r.upn)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		found, err := gc.FindUsersByUPNs(cctx, upns, lookupSelect...)
		cancel()
		for _, r := range batch {
			res := lookupRes{err: err}
			if u, ok := found[r.upn]; ok && err == nil && strings.EqualFold(u.UserPrincipalName, r.upn) {
				res.u = &u
			}
			r.done <- res
		}
	}
}

package passwords

import (
	"context"
	"fmt"

	"github.com/lib/pq"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/txn"
)

// sweepQuery lists the (organization, integration, user) whose remote account
// is enabled although X5/X6 want it disabled (a password expired, a lock-out
// began), or is disabled for X5/X6 although neither holds any more (a lock
// ran out, the maximum age was raised). Everything else changes through a
// mutation that starts its own reconcile; only time needs the sweep. Only
// settled links (IN_SYNC) of ACTIVE users are looked at: those are the ones
// X5/X6 move, and a link whose reconcile fails or is still running must not
// get a new job every period.
const sweepQuery = `
SELECT l.organization_id, l.integration_id, l.user_id
FROM remote_links l
JOIN users u ON u.id = l.user_id
JOIN integrations i ON i.id = l.integration_id
WHERE i.status = 'AUTHORIZED' AND l.kind = 'USER' AND l.remote_id <> '' AND l.status = 'IN_SYNC' AND u.state = 'ACTIVE'
  AND (i.suspend_on_password_expiry OR i.suspend_on_lockout)
  AND (
    (l.remote_enabled IS TRUE AND (
       (i.suspend_on_password_expiry AND u.password_expires_at <= $1) OR
       (i.suspend_on_lockout AND u.locked_until > $1)))
    OR
    (l.remote_enabled IS FALSE AND l.status_reason = ANY($2) AND NOT (
       (i.suspend_on_password_expiry AND u.password_expires_at IS NOT NULL AND u.password_expires_at <= $1) OR
       (i.suspend_on_lockout AND u.locked_until IS NOT NULL AND u.locked_until > $1)))
  )
ORDER BY l.organization_id, l.integration_id
LIMIT 10000`

// Sweep starts one reconcile job per (organization, integration) for the
// accounts whose X5/X6 state changed with time alone. Reconciles are
// convergent, so a sweep overlapping a pending reconcile only costs a no-op.
func (s *Service) Sweep(ctx context.Context) error {
	ctx = own(ctx)
	now := s.cfg.Now()
	rows, err := s.client.QueryContext(ctx, sweepQuery, now,
		pq.Array([]string{provision.ReasonPasswordExpired, provision.ReasonLockedOut}))
	if err != nil {
		return fmt.Errorf("passwords: sweep: %w", err)
	}
	type key struct{ org, in pulid.ID }
	found := map[key][]jobs.Target{}
	var order []key
	for rows.Next() {
		var org, in, u string
		if err := rows.Scan(&org, &in, &u); err != nil {
			rows.Close()
			return fmt.Errorf("passwords: sweep: %w", err)
		}
		k := key{pulid.ID(org), pulid.ID(in)}
		if _, ok := found[k]; !ok {
			order = append(order, k)
		}
		found[k] = append(found[k], jobs.Target{IntegrationID: k.in, UserID: pulid.ID(u)})
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("passwords: sweep: %w", err)
	}
	for _, k := range order {
		err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
			_, err := jobs.Start(ctx, c, k.org, jobs.JobPasswordPolicy, k.in, found[k])
			return err
		})
		if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "passwords: sweep started reconciles", "org", string(k.org), "integration", string(k.in), "users", len(found[k]))
	}
	return nil
}

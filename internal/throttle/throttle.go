// Package throttle is the budget every Graph call of one app+tenant shares, across
// all workers (DESIGN.md: one throttle-aware path per integration). Writes are held
// to Graph's write quota (3,000 per 150 s per app+tenant, GRAPH.md "Throttling"),
// reads to the resource-unit bucket, both as GCRA limits in Redis
// (github.com/go-redis/redis_rate). A 429's Retry-After pauses the whole tenant: every
// worker waits it out instead of each finding the wall on its own.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// Config sizes the budgets. Zero values take Graph's documented figures.
type Config struct {
	Redis redis.UniversalClient
	// Writes is the write quota; default 3,000 per 150 s.
	Writes redis_rate.Limit
	// Reads bounds reads; default 3,500 per 10 s (the smallest tenant tier, 1 RU each).
	Reads redis_rate.Limit
	// Headroom scales both limits (default 0.97) so clock skew between our limiter
	// and Graph's windows does not turn into 429s.
	Headroom float64
	// KeyPrefix namespaces the Redis keys (default "dirsync:throttle:").
	KeyPrefix string
	// Sleep waits; injectable for tests. Default: a timer in select with ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger gets one INFO line when a tenant starts being throttled (a 429's
	// pause) and one when it ends, as this process sees it. Default: discard.
	Logger *slog.Logger
	// Observer, when set, is told about 429s, waits and remaining budgets.
	Observer Observer
}

// Observer receives the budget figures (metrics). tenant is the budget key
// ("<tenant id>/<client id>"). Methods must not block.
type Observer interface {
	// TooManyRequests counts a 429 answer.
	TooManyRequests(tenant string)
	// Waited reports a wait before a call: reason "retry_after" (a 429's
	// pause) or "budget" (the quota).
	Waited(tenant, reason string, d time.Duration)
	// Budget reports the calls left in the budget kind ("read", "write").
	Budget(tenant, kind string, remaining int)
	// Paused reports the tenant entering or leaving a 429 pause.
	Paused(tenant string, paused bool)
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Writes.IsZero() {
		c.Writes = redis_rate.Limit{Rate: 3000, Period: 150 * time.Second, Burst: 20}
	}
	if c.Reads.IsZero() {
		c.Reads = redis_rate.Limit{Rate: 3500, Period: 10 * time.Second, Burst: 50}
	}
	if c.Headroom == 0 {
		c.Headroom = 0.97
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "dirsync:throttle:"
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem.
func (c *Config) Validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("throttle: Redis client required"))
	}
	if c.Headroom <= 0 || c.Headroom > 1 {
		errs = append(errs, errors.New("throttle: Headroom must be in (0, 1]"))
	}
	for name, l := range map[string]redis_rate.Limit{"Writes": c.Writes, "Reads": c.Reads} {
		if l.Rate <= 0 || l.Period <= 0 || l.Burst <= 0 {
			errs = append(errs, fmt.Errorf("throttle: %s limit needs positive Rate, Period and Burst", name))
		}
	}
	return errors.Join(errs...)
}

// Budgets hands out one Budget per app+tenant key.
type Budgets struct {
	cfg     Config
	limiter *redis_rate.Limiter
	writes  redis_rate.Limit
	reads   redis_rate.Limit

	mu     sync.Mutex
	paused map[string]time.Time // budget key → when this process saw its pause start
}

// New validates cfg and builds the shared limiter.
func New(cfg Config) (*Budgets, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Budgets{
		cfg:     cfg,
		limiter: redis_rate.NewLimiter(cfg.Redis),
		writes:  scale(cfg.Writes, cfg.Headroom),
		reads:   scale(cfg.Reads, cfg.Headroom),
		paused:  map[string]time.Time{},
	}, nil
}

// scale lowers the rate but keeps at least one event per period.
func scale(l redis_rate.Limit, f float64) redis_rate.Limit {
	r := int(float64(l.Rate) * f)
	if r < 1 {
		r = 1
	}
	return redis_rate.Limit{Rate: r, Period: l.Period, Burst: l.Burst}
}

// For returns the budget of one app+tenant (key: "<tenant id>/<client id>").
func (b *Budgets) For(key string) *Budget { return &Budget{b: b, key: key} }

// Budget is one app+tenant's share. It satisfies msgraph.Limiter.
type Budget struct {
	b   *Budgets
	key string
}

func (t *Budget) pauseKey() string { return t.b.cfg.KeyPrefix + "pause:" + t.key }

// Wait blocks until a call may go out: first any tenant-wide pause, then writes
// slots of the write budget (a $batch carries several), or one read slot.
func (t *Budget) Wait(ctx context.Context, writes int) error {
	limit, kind, n, kindName := t.b.reads, "r:", 1, "read"
	if writes > 0 {
		limit, kind, n, kindName = t.b.writes, "w:", min(writes, t.b.writes.Burst), "write"
	}
	obs := t.b.cfg.Observer
	for {
		pause, err := t.b.cfg.Redis.PTTL(ctx, t.pauseKey()).Result()
		if err != nil {
			return fmt.Errorf("throttle: read pause: %w", err)
		}
		if pause > 0 {
			t.b.pauseSeen(ctx, t.key, pause)
			if obs != nil {
				obs.Waited(t.key, "retry_after", pause)
			}
			if err := t.b.cfg.Sleep(ctx, pause); err != nil {
				return err
			}
			continue
		}
		t.b.pauseOver(ctx, t.key)
		res, err := t.b.limiter.AllowN(ctx, t.b.cfg.KeyPrefix+kind+t.key, limit, n)
		if err != nil {
			return fmt.Errorf("throttle: take budget: %w", err)
		}
		if obs != nil {
			obs.Budget(t.key, kindName, res.Remaining)
		}
		if res.Allowed > 0 {
			return nil
		}
		if obs != nil {
			obs.Waited(t.key, "budget", res.RetryAfter)
		}
		if err := t.b.cfg.Sleep(ctx, res.RetryAfter); err != nil {
			return err
		}
	}
}

// Penalize pauses every caller of this app+tenant for d (a 429's Retry-After). A
// longer pause already in force is kept.
func (t *Budget) Penalize(ctx context.Context, d time.Duration) {
	if t.b.cfg.Observer != nil {
		t.b.cfg.Observer.TooManyRequests(t.key)
	}
	if d <= 0 {
		return
	}
	t.b.pauseSeen(ctx, t.key, d)
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	pipe := t.b.cfg.Redis.TxPipeline()
	pipe.SetNX(ctx, t.pauseKey(), 1, time.Duration(ms)*time.Millisecond)
	pipe.Do(ctx, "PEXPIRE", t.pauseKey(), ms, "GT")
	// A failed penalty only costs extra 429s, which the caller retries anyway.
	_, _ = pipe.Exec(ctx)
}

// pauseSeen logs the start of a tenant's pause once per process, not once per
// waiting call: a throttled tenant with many workers would flood the log.
func (b *Budgets) pauseSeen(ctx context.Context, key string, wait time.Duration) {
	b.mu.Lock()
	_, already := b.paused[key]
	if !already {
		b.paused[key] = time.Now()
	}
	b.mu.Unlock()
	if already {
		return
	}
	b.cfg.Logger.InfoContext(ctx, "graph throttling: tenant paused by Microsoft Graph (429 Retry-After)",
		"tenant", key, "wait", wait.Round(time.Millisecond))
	if b.cfg.Observer != nil {
		b.cfg.Observer.Paused(key, true)
	}
}

// pauseOver logs the end of a pause this process saw start.
func (b *Budgets) pauseOver(ctx context.Context, key string) {
	b.mu.Lock()
	since, was := b.paused[key]
	delete(b.paused, key)
	b.mu.Unlock()
	if !was {
		return
	}
	b.cfg.Logger.InfoContext(ctx, "graph throttling: tenant pause over, calls resume",
		"tenant", key, "paused_for", time.Since(since).Round(time.Millisecond))
	if b.cfg.Observer != nil {
		b.cfg.Observer.Paused(key, false)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

var _ msgraph.Limiter = (*Budget)(nil)

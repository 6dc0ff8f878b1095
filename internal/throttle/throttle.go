// Package throttle is the budget every Graph call of one app+tenant shares, across
// all workers (DESIGN.md: one throttle-aware path per integration).
//
// Writes are modelled on Graph's own write quota (GRAPH.md "Throttling"): a bucket
// per app+tenant of Size writes (default 3,000) that refills at RefillPerSecond
// (default 20, i.e. 3,000 per 150 s) and STARTS FULL, kept in Redis so every worker
// draws from the same bucket. It adapts to what the tenant says:
//
//   - a 429 pauses the whole tenant for its Retry-After, empties our bucket (the
//     tenant just told us it is empty) and, when our bucket already believed it
//     was running on the refill alone, halves the refill rate (someone else
//     writes with this app); successful writes raise the rate back step by step
//     (AIMD);
//   - an answer carrying x-ms-throttle-limit-percentage (Graph sends it above
//     80 % of the budget) lowers our bucket to what the tenant has left, so a
//     tenant whose bucket someone else emptied is met at its refill rate without
//     first collecting 429s;
//   - each process keeps a window of writes in flight per app+tenant that starts
//     small and doubles with every round of successes (slow start), halves on a
//     429 and never exceeds MaxInFlight: a fresh tenant is probed with a handful
//     of writes, not with every worker at once.
//
// Reads are held to the resource-unit bucket as a GCRA limit in Redis
// (github.com/go-redis/redis_rate). A 429's Retry-After pauses reads as well.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// Graph's documented write quota per app+tenant (GRAPH.md "Throttling").
const (
	DefaultWriteSize            = 3000
	DefaultWriteRefillPerSecond = 20.0
)

// WriteBudget sizes one app+tenant's write bucket. Zero fields take the defaults.
type WriteBudget struct {
	// Size is how many writes the bucket holds when full.
	Size int
	// RefillPerSecond is how many writes per second it regains.
	RefillPerSecond float64
}

func (w WriteBudget) withDefaults() WriteBudget {
	if w.Size <= 0 {
		w.Size = DefaultWriteSize
	}
	if w.RefillPerSecond <= 0 {
		w.RefillPerSecond = DefaultWriteRefillPerSecond
	}
	return w
}

// Config sizes the budgets. Zero values take Graph's documented figures.
type Config struct {
	Redis redis.UniversalClient
	// Writes is the default write bucket (an integration may set its own).
	Writes WriteBudget
	// Reads bounds reads; default 3,500 per 10 s (the smallest tenant tier, 1 RU each).
	Reads redis_rate.Limit
	// Headroom scales the refill rates (default 0.985) so the difference between
	// our clock and Graph's, and the jitter of request latency, do not turn
	// into 429s once a tenant runs on its refill. The full bucket is used whole.
	Headroom float64
	// InitialWindow is how many writes per app+tenant one process sends before
	// the first answers come back (default 4); MaxInFlight bounds the window
	// (default 64). Both count writes in flight, not tasks.
	InitialWindow int
	MaxInFlight   int
	// MinRate is the lowest share of RefillPerSecond repeated 429s can bring
	// the refill down to (default 0.25); RateStep is what each successful write
	// gives back (default 0.02: from half rate to full in 25 writes).
	MinRate  float64
	RateStep float64
	// MaxHold bounds how long one Wait keeps its caller (a worker slot) for a
	// pause, the window or the bucket; past it Wait returns a *BusyError
	// saying when to come back, so the task is requeued and the slot serves
	// other tenants meanwhile. 0: wait as long as it takes.
	MaxHold time.Duration
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
	c.Writes = c.Writes.withDefaults()
	if c.Reads.IsZero() {
		c.Reads = redis_rate.Limit{Rate: 3500, Period: 10 * time.Second, Burst: 50}
	}
	if c.Headroom == 0 {
		c.Headroom = 0.985
	}
	if c.InitialWindow <= 0 {
		c.InitialWindow = 4
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.MinRate <= 0 {
		c.MinRate = 0.25
	}
	if c.RateStep <= 0 {
		c.RateStep = 0.02
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
	if c.Reads.Rate <= 0 || c.Reads.Period <= 0 || c.Reads.Burst <= 0 {
		errs = append(errs, errors.New("throttle: Reads limit needs positive Rate, Period and Burst"))
	}
	if c.MinRate > 1 {
		errs = append(errs, errors.New("throttle: MinRate must be in (0, 1]"))
	}
	if c.InitialWindow > c.MaxInFlight {
		errs = append(errs, errors.New("throttle: InitialWindow exceeds MaxInFlight"))
	}
	return errors.Join(errs...)
}

// BusyError: the app+tenant's budget would keep the caller longer than
// MaxHold. Nothing was sent; come back after RetryAfter.
type BusyError struct {
	Key        string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("throttle: write budget of %s busy, retry in %s", e.Key, e.RetryAfter.Round(time.Millisecond))
}

// minBusyRetry is the shortest come-back a BusyError names. The worker adds a
// second to any Retry-After (asynq schedules in whole seconds), so the task
// returns after 1.25 s or so: soon enough that the last tasks of a backlog do
// not idle while the budget has room (issue 12).
const minBusyRetry = 250 * time.Millisecond

// holder tracks one Wait against MaxHold.
type holder struct {
	key      string
	deadline time.Time // zero: no bound
}

func (b *Budgets) holder(key string) holder {
	if b.cfg.MaxHold <= 0 {
		return holder{key: key}
	}
	return holder{key: key, deadline: time.Now().Add(b.cfg.MaxHold)}
}

// check returns a BusyError when waiting d more would pass the deadline.
func (h holder) check(d time.Duration) error {
	if h.deadline.IsZero() || time.Now().Add(d).Before(h.deadline) {
		return nil
	}
	return &BusyError{Key: h.key, RetryAfter: max(d, minBusyRetry)}
}

// ctx bounds a wait that cannot tell its length in advance (the window).
func (h holder) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, h.deadline)
}

// Budgets hands out one Budget per app+tenant key.
type Budgets struct {
	cfg     Config
	limiter *redis_rate.Limiter
	reads   redis_rate.Limit

	mu      sync.Mutex
	paused  map[string]time.Time // budget key → when this process saw its pause start
	windows map[string]*window   // budget key → this process's writes in flight
}

// New validates cfg and builds the shared limiter.
func New(cfg Config) (*Budgets, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := int(float64(cfg.Reads.Rate) * cfg.Headroom)
	return &Budgets{
		cfg:     cfg,
		limiter: redis_rate.NewLimiter(cfg.Redis),
		reads:   redis_rate.Limit{Rate: max(r, 1), Period: cfg.Reads.Period, Burst: cfg.Reads.Burst},
		paused:  map[string]time.Time{},
		windows: map[string]*window{},
	}, nil
}

// For returns the budget of one app+tenant (key: "<tenant id>/<client id>")
// with the default write bucket.
func (b *Budgets) For(key string) *Budget { return b.ForWrites(key, WriteBudget{}) }

// ForWrites returns the budget of one app+tenant with its own write bucket
// (zero fields: the defaults). Every caller of one key must pass the same sizes.
func (b *Budgets) ForWrites(key string, w WriteBudget) *Budget {
	if w.Size <= 0 {
		w.Size = b.cfg.Writes.Size
	}
	if w.RefillPerSecond <= 0 {
		w.RefillPerSecond = b.cfg.Writes.RefillPerSecond
	}
	return &Budget{b: b, key: key, writes: w, win: b.window(key)}
}

func (b *Budgets) window(key string) *window {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.windows[key]
	if w == nil {
		w = &window{size: float64(b.cfg.InitialWindow), ssthresh: float64(b.cfg.MaxInFlight),
			max: float64(b.cfg.MaxInFlight), changed: make(chan struct{}), rate: 1}
		b.windows[key] = w
	}
	return w
}

// Budget is one app+tenant's share. It satisfies msgraph.Limiter and
// msgraph.Feedback.
type Budget struct {
	b      *Budgets
	key    string
	writes WriteBudget
	win    *window
}

func (t *Budget) pauseKey() string  { return t.b.cfg.KeyPrefix + "pause:" + t.key }
func (t *Budget) bucketKey() string { return t.b.cfg.KeyPrefix + "wb:" + t.key }

// refillPerMs is the nominal refill with headroom, per millisecond.
func (t *Budget) refillPerMs() float64 {
	return t.writes.RefillPerSecond * t.b.cfg.Headroom / 1000
}

// Wait blocks until a call may go out: first any tenant-wide pause, then, for a
// write, a place in this process's window and writes tokens of the shared
// bucket (a $batch carries several); for a read, one read slot. Every Wait
// that returns nil for a write must be followed by Answered.
func (t *Budget) Wait(ctx context.Context, writes int) error {
	h := t.b.holder(t.key)
	if writes <= 0 {
		return t.waitRead(ctx, h)
	}
	wctx, cancel := h.ctx(ctx)
	err := t.win.acquire(wctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The window stayed full all along: writes are slow to come back.
			return &BusyError{Key: t.key, RetryAfter: minBusyRetry}
		}
		return err
	}
	if err := t.waitWrite(ctx, h, writes); err != nil {
		t.win.release()
		return err
	}
	return nil
}

func (t *Budget) waitRead(ctx context.Context, h holder) error {
	obs := t.b.cfg.Observer
	for {
		pause, err := t.b.cfg.Redis.PTTL(ctx, t.pauseKey()).Result()
		if err != nil {
			return fmt.Errorf("throttle: read pause: %w", err)
		}
		if pause > 0 {
			if err := h.check(pause); err != nil {
				return err
			}
			if err := t.sitOut(ctx, pause); err != nil {
				return err
			}
			continue
		}
		t.b.pauseOver(ctx, t.key)
		res, err := t.b.limiter.Allow(ctx, t.b.cfg.KeyPrefix+"r:"+t.key, t.b.reads)
		if err != nil {
			return fmt.Errorf("throttle: take budget: %w", err)
		}
		if obs != nil {
			obs.Budget(t.key, "read", res.Remaining)
		}
		if res.Allowed > 0 {
			return nil
		}
		if err := h.check(res.RetryAfter); err != nil {
			return err
		}
		if obs != nil {
			obs.Waited(t.key, "budget", res.RetryAfter)
		}
		if err := t.b.cfg.Sleep(ctx, res.RetryAfter); err != nil {
			return err
		}
	}
}

func (t *Budget) sitOut(ctx context.Context, pause time.Duration) error {
	t.b.pauseSeen(ctx, t.key, pause)
	if obs := t.b.cfg.Observer; obs != nil {
		obs.Waited(t.key, "retry_after", pause)
	}
	return t.b.cfg.Sleep(ctx, pause)
}

// refillLua opens every script that changes the write bucket (KEYS[1],
// ARGV[1] its size, ARGV[2] its nominal refill per ms): Redis's clock as
// now, and the bucket's tokens refilled up to now at the rate in force
// (rate × f). A bucket never used (or expired) is full.
const refillLua = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local size, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'f')
local tokens, ts, f = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
if tokens == nil or ts == nil then tokens, ts = size, now end
if f == nil then f = 1 end
if now > ts then tokens = math.min(size, tokens + (now - ts) * rate * f) end
`

// takeScript refills the bucket and takes n tokens from it in one step, after
// checking the tenant's pause. Time is Redis's, so every worker agrees on it.
// State: tokens, ts (ms), f (share of the refill rate in force), hit (ms of the
// last 429 that shrank it). A bucket nobody used for longer than it takes to
// refill expires: it is full again, as Graph's is.
// Returns {granted 0/1, wait ms, pause ms, tokens left, f}.
var takeScript = redis.NewScript(`
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {0, 0, pause, 0, '1'} end
` + refillLua + `
local n = tonumber(ARGV[3])
local r = rate * f
if n > size then n = size end
local granted, wait = 0, 0
if tokens >= n then
  tokens = tokens - n
  granted = 1
else
  wait = math.ceil((n - tokens) / r)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'f', tostring(f))
redis.call('PEXPIRE', KEYS[1], math.ceil(size / r) + 60000)
return {granted, wait, 0, math.floor(tokens), tostring(f)}
`)

func (t *Budget) waitWrite(ctx context.Context, h holder, n int) error {
	obs := t.b.cfg.Observer
	for {
		res, err := takeScript.Run(ctx, t.b.cfg.Redis, []string{t.bucketKey(), t.pauseKey()},
			t.writes.Size, t.refillPerMs(), n).Slice()
		if err != nil {
			return fmt.Errorf("throttle: take write budget: %w", err)
		}
		granted, wait, pause, left := toInt(res[0]), toInt(res[1]), toInt(res[2]), toInt(res[3])
		if pause > 0 {
			if err := h.check(time.Duration(pause) * time.Millisecond); err != nil {
				return err
			}
			if err := t.sitOut(ctx, time.Duration(pause)*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		t.b.pauseOver(ctx, t.key)
		if f, err := strconv.ParseFloat(fmt.Sprint(res[4]), 64); err == nil {
			t.win.setRate(f)
		}
		if obs != nil {
			obs.Budget(t.key, "write", int(left))
		}
		if granted == 1 {
			return nil
		}
		d := time.Duration(wait) * time.Millisecond
		if err := h.check(d); err != nil {
			return err
		}
		if obs != nil {
			obs.Waited(t.key, "budget", d)
		}
		if err := t.b.cfg.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// penalizeScript: the tenant said 429. Our bucket is empty, whatever we
// thought; and if we already thought so (we were living on the refill), the
// refill itself is too generous, so halve it, once per second at most: the
// other writes in flight at that moment answer 429 too and say nothing new.
var penalizeScript = redis.NewScript(refillLua + `
local minf = tonumber(ARGV[3])
local hit = tonumber(redis.call('HGET', KEYS[1], 'hit')) or 0
if now - hit >= 1000 then
  if tokens < math.max(1, size * 0.01) then f = math.max(minf, f / 2) end
  hit = now
end
if tokens > 0 then tokens = 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'f', tostring(f), 'hit', hit)
redis.call('PEXPIRE', KEYS[1], math.ceil(size / (rate * f)) + 60000)
return tostring(f)
`)

// Penalize pauses every caller of this app+tenant for d (a 429's Retry-After;
// a longer pause already in force is kept), empties the write bucket and, when
// the bucket was already living on its refill, halves the refill.
func (t *Budget) Penalize(ctx context.Context, d time.Duration) {
	if t.b.cfg.Observer != nil {
		t.b.cfg.Observer.TooManyRequests(t.key)
	}
	// Failures below only cost extra 429s, which the caller retries anyway.
	if f, err := penalizeScript.Run(ctx, t.b.cfg.Redis, []string{t.bucketKey()},
		t.writes.Size, t.refillPerMs(), t.b.cfg.MinRate).Text(); err == nil {
		if v, err := strconv.ParseFloat(f, 64); err == nil {
			t.win.setRate(v)
		}
	}
	if d <= 0 {
		return
	}
	t.b.pauseSeen(ctx, t.key, d)
	ms := max(d.Milliseconds(), 1)
	pipe := t.b.cfg.Redis.TxPipeline()
	pipe.SetNX(ctx, t.pauseKey(), 1, time.Duration(ms)*time.Millisecond)
	pipe.Do(ctx, "PEXPIRE", t.pauseKey(), ms, "GT")
	_, _ = pipe.Exec(ctx)
}

// clampScript lowers the bucket to what the tenant says it has left, when our
// bucket believes in clearly more: Graph gives the share used to one decimal,
// so "1.0" means anything up to 5 % left. A bucket already living on its
// refill is left alone; clamping it at every answer would throw away what
// refilled while the write was on its way and hold us well below the quota.
var clampScript = redis.NewScript(refillLua + `
local left = tonumber(ARGV[3])
if tokens > left + size * 0.05 then tokens = left end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'f', tostring(f))
redis.call('PEXPIRE', KEYS[1], math.ceil(size / (rate * f)) + 60000)
return 1
`)

// raiseScript gives back part of the refill rate after a successful write.
var raiseScript = redis.NewScript(`
local f = tonumber(redis.call('HGET', KEYS[1], 'f'))
if f == nil then return '1' end
f = math.min(1, f + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'f', tostring(f))
return tostring(f)
`)

// Answered is told how Graph answered a request that Wait let out (status 0:
// no answer). For writes it frees the place in the window, grows the window
// after a success, gives back refill rate lost to 429s, and lowers the bucket
// to what x-ms-throttle-limit-percentage says is left.
func (t *Budget) Answered(ctx context.Context, writes, status int, header http.Header) {
	if writes <= 0 {
		return
	}
	used := usage(header)
	rate := t.win.answered(status, used >= 0.8)
	if status == 0 || status == http.StatusTooManyRequests || status >= 500 {
		return
	}
	if used >= 0.8 {
		left := math.Max(0, (1-used)*float64(t.writes.Size))
		_ = clampScript.Run(ctx, t.b.cfg.Redis, []string{t.bucketKey()}, t.writes.Size, t.refillPerMs(), left).Err()
	}
	if rate < 1 {
		if f, err := raiseScript.Run(ctx, t.b.cfg.Redis, []string{t.bucketKey()}, t.b.cfg.RateStep).Text(); err == nil {
			if v, err := strconv.ParseFloat(f, 64); err == nil {
				t.win.setRate(v)
			}
		}
	}
}

// usage reads x-ms-throttle-limit-percentage (0..1; -1 when absent).
func usage(h http.Header) float64 {
	v := h.Get("x-ms-throttle-limit-percentage")
	if v == "" {
		return -1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return -1
	}
	if f > 1 { // some answers give a percentage rather than a fraction
		f /= 100
	}
	return math.Min(f, 1)
}

// window is one process's writes in flight to one app+tenant, grown like a
// TCP congestion window: doubling per round of successes up to ssthresh,
// one per round after, halved by a 429.
type window struct {
	mu       sync.Mutex
	inFlight int
	size     float64
	ssthresh float64
	max      float64
	rate     float64 // last known share of the refill rate (from Redis)
	changed  chan struct{}
}

func (w *window) acquire(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.inFlight < max(1, int(w.size)) {
			w.inFlight++
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// signal wakes the waiters; call with mu held.
func (w *window) signal() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *window) release() {
	w.mu.Lock()
	w.inFlight--
	w.signal()
	w.mu.Unlock()
}

// answered frees a place and adapts the size; it returns the last known rate share.
func (w *window) answered(status int, nearlyEmpty bool) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	switch {
	case status == http.StatusTooManyRequests:
		w.ssthresh = max(1, w.size/2)
		w.size = w.ssthresh
	case status == 0 || status >= 500:
	case nearlyEmpty:
		// The tenant's bucket is almost dry: the budget paces us now, growing
		// the window only queues more writes behind it.
		w.ssthresh = max(1, math.Min(w.ssthresh, w.size))
	case w.size < w.ssthresh:
		w.size = math.Min(w.max, w.size+1)
	default:
		w.size = math.Min(w.max, w.size+1/w.size)
	}
	w.signal()
	return w.rate
}

func (w *window) setRate(f float64) {
	w.mu.Lock()
	w.rate = f
	w.mu.Unlock()
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

var (
	_ msgraph.Limiter  = (*Budget)(nil)
	_ msgraph.Feedback = (*Budget)(nil)
)

package pubsub_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// blackhole is a TCP proxy to Redis that can start swallowing everything on
// the connections it has, like a peer that vanished without a FIN: nothing
// errors, the Hub just stops hearing from Redis.
type blackhole struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  []*proxied
	closed bool
}

type proxied struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &blackhole{ln: ln, target: target}
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

func (b *blackhole) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", b.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p := &proxied{client: c, server: s}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		b.conns = append(b.conns, p)
		b.mu.Unlock()
		b.wg.Go(func() { p.pipe(s, c) })
		b.wg.Go(func() { p.pipe(c, s) })
	}
}

// pipe copies until either side closes, dropping bytes once frozen.
func (p *proxied) pipe(dst, src net.Conn) {
	defer p.client.Close()
	defer p.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze silences every connection made so far; new ones work.
func (b *blackhole) freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.conns {
		p.frozen.Store(true)
	}
}

func (b *blackhole) close() {
	b.mu.Lock()
	b.closed = true
	_ = b.ln.Close()
	for _, p := range b.conns {
		_ = p.client.Close()
		_ = p.server.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// A connection that goes silent without an error is detected by the
// watchdog's pings and replaced; subscribers get a resync.
func TestHubReplacesSilentConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	proxy := newBlackhole(t, e.info.Addr)
	h := e.hub(pubsub.HubConfig{PingInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond},
		func(o *redis.Options) { o.Addr = proxy.addr() })
	s, err := h.Subscribe(t.Context(), "o", nil)
	require.NoError(t, err)

	start := time.Now()
	proxy.freeze()
	m := recv(t, s, 3*time.Second)
	assert.Equal(t, pubsub.KindResync, m.Kind)
	// Silent for 2 × PingInterval, checked every PingInterval/2.
	assert.Less(t, time.Since(start), time.Second)

	require.NoError(t, e.publisher().Publish(t.Context(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: "after"}))
	assert.Equal(t, "after", recv(t, s, 2*time.Second).ID)
}

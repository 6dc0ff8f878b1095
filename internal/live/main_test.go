package live_test

import (
	"context"

	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one test's deployment: one PostgreSQL database, one Redis database
// and channel prefix (pub/sub channels are not scoped by Redis database), a
// publisher standing for the workers, and API processes added with api().
type env struct {
	t      testing.TB
	client *ent.Client
	dbURL  string
	redis  testredis.Info
	prefix string
	pub    *pubsub.Publisher
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, redis: testredis.New(t), prefix: "test:" + randomHex(6) + ":"}
	e.dbURL = testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(e.dbURL, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	e.client = ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	e.pub = pubsub.NewPublisher(e.rdb(), e.prefix)
	return e
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *env) rdb() *redis.Client {
	opts := e.redis.Options()
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// process is one API process: its own Hub (one Redis subscription) and
// HTTP server in front of the real /graphql handler.
type process struct {
	hub      *pubsub.Hub
	hubRedis string // the Hub's Redis client name, for CLIENT KILL
	url      string // http://…/graphql
	ws       string // ws://…/graphql
}

func (e *env) api(cfg api.Config, hubCfg pubsub.HubConfig) *process {
	e.t.Helper()
	return e.apiServer(cfg, hubCfg, nil)
}

// apiServer is api with, when limits is not nil, the real http.Server and
// its timeouts (server.Serve) instead of httptest's server without any.
func (e *env) apiServer(cfg api.Config, hubCfg pubsub.HubConfig, limits *server.Limits) *process {
	e.t.Helper()
	name := "livetest" + randomHex(6)
	opts := e.redis.Options()
	opts.ContextTimeoutEnabled, opts.ClientName = true, name
	hubRedis := redis.NewClient(opts)
	e.t.Cleanup(func() { _ = hubRedis.Close() })
	hubCfg.Client = hubRedis
	hubCfg.Prefix = e.prefix
	hub := pubsub.NewHub(hubCfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	cfg.Deps.Hub = hub
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	// The whole HTTP stack a client meets (request ids, access log, security
	// headers, stream deadlines, panic recovery), not only /graphql: a
	// middleware that hid http.Flusher once broke SSE.
	scfg := server.Config{GraphQL: api.NewHandler(cfg, e.client, logger), Logger: logger, ShutdownTimeout: 5 * time.Second}
	if limits != nil {
		scfg.Limits = *limits
	}
	front, err := server.New(scfg)
	require.NoError(e.t, err)
	var base string
	if limits == nil {
		srv := httptest.NewServer(front.Handler())
		e.t.Cleanup(func() {
			srv.CloseClientConnections()
			srv.Close()
			cancel()
			<-done
		})
		base = srv.URL
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(e.t, err)
		served := make(chan error, 1)
		go func() { served <- front.Serve(ctx, ln) }()
		e.t.Cleanup(func() {
			cancel()
			<-served
			<-done
		})
		base = "http://" + ln.Addr().String()
	}
	waitFor(e.t, 5*time.Second, hub.Connected)
	return &process{hub: hub, hubRedis: name, url: base + "/graphql", ws: "ws" + strings.TrimPrefix(base, "http") + "/graphql"}
}

func waitFor(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type org struct {
	id       pulid.ID
	admin    string
	readOnly string
}

func (e *env) org(name string) org {
	e.t.Helper()
	ctx := auth.SystemContext(context.Background())
	o, err := directory.New(e.client).CreateOrganization(ctx, name)
	require.NoError(e.t, err)
	admin, _, err := auth.CreateAPIKey(ctx, e.client, o.ID, "admin", auth.RoleAdmin)
	require.NoError(e.t, err)
	ro, _, err := auth.CreateAPIKey(ctx, e.client, o.ID, "reader", auth.RoleReadOnly)
	require.NoError(e.t, err)
	return org{id: o.ID, admin: admin, readOnly: ro}
}

// worker simulates the reconcile worker's contract for one job: a job row
// with one item per user, then per item a committed completion followed by
// its events and the job's new state on Redis.
type worker struct {
	e     *env
	org   pulid.ID
	job   *ent.Job
	items []*ent.JobItem
}

func (e *env) startJob(o pulid.ID, n int) *worker {
	e.t.Helper()
	ctx := auth.SystemContext(context.Background())
	j, err := e.client.Job.Create().SetOrganizationID(o).SetKind(jobs.JobBindUsers).SetTotal(n).Save(ctx)
	require.NoError(e.t, err)
	integ := pulid.New("IN")
	builders := make([]*ent.JobItemCreate, n)
	for i := range builders {
		builders[i] = e.client.JobItem.Create().SetOrganizationID(o).SetJobID(j.ID).
			SetIntegrationID(integ).SetUserID(pulid.New("US"))
	}
	items, err := e.client.JobItem.CreateBulk(builders...).Save(ctx)
	require.NoError(e.t, err)
	return &worker{e: e, org: o, job: j, items: items}
}

// complete finishes item i: commit, then publish two events of its user (in
// order) and the job's new state, as the worker does.
func (w *worker) complete(i int, failed bool) error {
	ctx := auth.SystemContext(context.Background())
	it := w.items[i]
	tx, err := w.e.client.Tx(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if _, err := jobs.CompleteItem(ctx, tx.Client(), w.org, w.job.ID, it.ID, jobs.ItemOutcome{Failed: failed, Result: jobs.ResultCreated}, now); err != nil {
		_ = tx.Rollback()
		return err
	}
	var evs []*ent.Event
	for _, typ := range []string{"user_create_provision", "user_update_provision"} {
		ev, err := tx.Event.Create().SetOrganizationID(w.org).SetType(typ).SetUserID(*it.UserID).
			SetIntegrationID(it.IntegrationID).SetJobID(w.job.ID).Save(ctx)
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		evs = append(evs, ev)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, ev := range evs {
		m, err := jobs.EventMessage(ev)
		if err != nil {
			return err
		}
		if err := w.e.pub.Publish(ctx, m); err != nil {
			return err
		}
	}
	j, err := w.e.client.Job.Get(ctx, w.job.ID)
	if err != nil {
		return err
	}
	m, err := jobs.JobMessage(j)
	if err != nil {
		return err
	}
	return w.e.pub.Publish(ctx, m)
}

// runAll completes every item from `workers` goroutines, like concurrent
// worker processes: the job's messages then arrive in any order.
func (w *worker) runAll(workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := w.complete(i, false); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range w.items {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// ---- a minimal graphql-transport-ws client (the protocol of the graphql-ws npm library) ----

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	msgs chan wsMsg
	done chan struct{}
	err  error // why the read loop ended; read after done
}

type dialOpts struct {
	init   any // connection_init payload; nil sends none
	header http.Header
	noInit bool
}

// dial opens a graphql-transport-ws socket and sends connection_init. It
// does not wait for connection_ack: see ack.
func dial(t testing.TB, url string, o dialOpts) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: o.header,
	})
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn, msgs: make(chan wsMsg, 4096), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = conn.CloseNow(); <-c.done })
	if !o.noInit {
		c.send(wsMsg{Type: "connection_init", Payload: mustJSON(o.init)})
	}
	return c, nil
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	defer close(c.msgs)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			c.err = err
			return
		}
		if m.Type == "ping" {
			c.send(wsMsg{Type: "pong"})
			continue
		}
		c.msgs <- m
	}
}

func (c *wsClient) send(m wsMsg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := json.Marshal(m)
	_ = c.conn.Write(ctx, websocket.MessageText, b)
}

// next returns the next message, or ok=false when the socket closed.
func (c *wsClient) next(limit time.Duration) (wsMsg, bool) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(limit):
		c.t.Fatalf("no websocket message within %s", limit)
		return wsMsg{}, false
	}
}

func (c *wsClient) ack() {
	c.t.Helper()
	m, ok := c.next(10 * time.Second)
	if !ok {
		c.t.Fatalf("socket closed before connection_ack: %v", c.closeStatus())
	}
	require.Equal(c.t, "connection_ack", m.Type)
}

// closeStatus waits for the socket to close and returns the server's code.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for range c.msgs {
	}
	<-c.done
	return websocket.CloseStatus(c.err)
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.send(wsMsg{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": query, "variables": vars})})
}

type result struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (r result) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions["code"].(string)
	return s
}

// collect reads one operation's results until its complete (other ids are
// not expected on the socket).
func (c *wsClient) collect(id string, limit time.Duration) []result {
	c.t.Helper()
	var out []result
	deadline := time.Now().Add(limit)
	for {
		m, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("socket closed before complete of %s: %v", id, c.closeStatus())
		}
		require.Equal(c.t, id, m.ID, "message %s %s", m.Type, m.Payload)
		switch m.Type {
		case "next":
			var r result
			require.NoError(c.t, json.Unmarshal(m.Payload, &r))
			out = append(out, r)
		case "complete":
			return out
		case "error":
			c.t.Fatalf("operation error: %s", m.Payload)
		}
	}
}

// nextResult reads one `next` of id.
func (c *wsClient) nextResult(id string, limit time.Duration) result {
	c.t.Helper()
	m, ok := c.next(limit)
	if !ok {
		c.t.Fatalf("socket closed: %v", c.closeStatus())
	}
	require.Equal(c.t, id, m.ID)
	require.Equal(c.t, "next", m.Type, "payload %s", m.Payload)
	var r result
	require.NoError(c.t, json.Unmarshal(m.Payload, &r))
	return r
}

type jobOut struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Done   int    `json:"done"`
	Total  int    `json:"total"`
	Failed int    `json:"failed"`
}

type eventOut struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	UserID string `json:"userID"`
	JobID  string `json:"jobID"`
}

func field[T any](t testing.TB, r result, name string) T {
	t.Helper()
	require.Empty(t, r.Errors)
	var v T
	require.NoError(t, json.Unmarshal(r.Data[name], &v))
	return v
}

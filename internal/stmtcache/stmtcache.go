// Package stmtcache keeps the statements a PostgreSQL connection runs
// prepared on it, so a statement run again costs one round trip and no parse.
//
// lib/pq runs every statement that has parameters as an unnamed prepared
// statement: Parse and Describe, wait for the answer, then Bind and Execute,
// wait again. Each run is two round trips, and PostgreSQL parses and analyses
// the text each time. dirsync runs the same few dozen statements millions of
// times (ent builds identical SQL for identical queries), so this package
// wraps lib/pq's connector: the first run of a text prepares it as a named
// statement on that connection, and later runs only bind and execute it. It
// is what pgx, the other common Go driver, does by default ("cache
// statement" mode).
//
// Statements without parameters are sent as before (lib/pq's simple query,
// already one round trip). A text is prepared the second time a connection
// runs it: texts run once (a bulk insert whose text changes with its row
// count, an IN list of a size never seen again) are sent as before and never
// take a place. The cache is per connection and bounded; the least recently
// used statement is closed when it is full.
//
// A connection pooler in transaction mode (PgBouncer's pool_mode=transaction)
// does not keep a session's prepared statements; set the size to 0 there
// (docs/operators.md).
package stmtcache

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"

	"github.com/lib/pq"
)

// DefaultSize is the number of statements kept per connection. dirsync's hot
// set is well under it; PostgreSQL keeps a plan per statement per backend, so
// it is not made larger than needed.
const DefaultSize = 256

// Open returns a pool for the lib/pq URL dsn whose connections keep up to
// size statements prepared (0: none, plain lib/pq).
func Open(dsn string, size int) (*sql.DB, error) {
	c, err := NewConnector(dsn, size)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// NewConnector wraps lib/pq's connector for dsn.
func NewConnector(dsn string, size int) (driver.Connector, error) {
	base, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		return base, nil
	}
	return &connector{base: base, size: size}, nil
}

type connector struct {
	base driver.Connector
	size int
}

func (c *connector) Driver() driver.Driver { return c.base.Driver() }

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	b, ok := dc.(baseConn)
	if !ok {
		_ = dc.Close()
		return nil, fmt.Errorf("stmtcache: %T lacks the context methods lib/pq's connections have", dc)
	}
	return &conn{base: b, size: c.size, byQuery: map[string]*list.Element{}, lru: list.New(),
		seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}, nil
}

// baseConn is what lib/pq's connection implements and this wrapper relays.
type baseConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.QueryerContext
	driver.ExecerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

type cached struct {
	query string
	stmt  preparedStmt
}

type preparedStmt interface {
	driver.Stmt
	driver.StmtQueryContext
	driver.StmtExecContext
}

// conn is used by one goroutine at a time (database/sql's contract), so the
// cache needs no lock.
type conn struct {
	base    baseConn
	size    int
	byQuery map[string]*list.Element
	lru     *list.List // front: most recently used
	// seen holds the hashes of texts run once and not prepared; a hash
	// collision only prepares a text one run early.
	seen map[uint64]struct{}
	seed maphash.Seed
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) { return c.base.Prepare(query) }
func (c *conn) Begin() (driver.Tx, error)                 { return c.base.Begin() }
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.base.BeginTx(ctx, opts)
}
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.base.PrepareContext(ctx, query)
}
func (c *conn) Ping(ctx context.Context) error              { return c.base.Ping(ctx) }
func (c *conn) ResetSession(ctx context.Context) error      { return c.base.ResetSession(ctx) }
func (c *conn) IsValid() bool                               { return c.base.IsValid() }
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error { return c.base.CheckNamedValue(nv) }

// Close closes the connection; its prepared statements go with the session.
func (c *conn) Close() error { return c.base.Close() }

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, err := c.prepared(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.base.QueryContext(ctx, query, args)
	}
	rows, err := st.stmt.QueryContext(ctx, args)
	if err != nil {
		c.forgetIfStale(st, err)
		return nil, err
	}
	return rows, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	st, err := c.prepared(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.base.ExecContext(ctx, query, args)
	}
	res, err := st.stmt.ExecContext(ctx, args)
	if err != nil {
		c.forgetIfStale(st, err)
		return nil, err
	}
	return res, nil
}

// prepared returns query's statement on this connection, preparing it (and
// closing the least recently used one when full) the second time the text
// runs; nil: run it unnamed, as lib/pq does. A statement without parameters
// already takes one round trip (lib/pq's simple query); COPY, which has none,
// goes through Prepare, relayed as it is.
func (c *conn) prepared(ctx context.Context, query string, args []driver.NamedValue) (*cached, error) {
	if len(args) == 0 {
		return nil, nil
	}
	if e, ok := c.byQuery[query]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cached), nil
	}
	h := maphash.String(c.seed, query)
	if _, ok := c.seen[h]; !ok {
		if len(c.seen) >= 4*c.size {
			clear(c.seen) // bounded: forgetting only delays a preparation
		}
		c.seen[h] = struct{}{}
		return nil, nil
	}
	delete(c.seen, h)
	ds, err := c.base.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ps, ok := ds.(preparedStmt)
	if !ok {
		_ = ds.Close()
		return nil, fmt.Errorf("stmtcache: %T lacks the context methods lib/pq's statements have", ds)
	}
	for c.lru.Len() >= c.size {
		old := c.lru.Back()
		c.drop(old)
		// A statement left open costs the server a little memory until the
		// session ends; a failed Close says the connection is broken, which
		// lib/pq has recorded for database/sql to discard it.
		_ = old.Value.(*cached).stmt.Close()
	}
	st := &cached{query: query, stmt: ps}
	c.byQuery[query] = c.lru.PushFront(st)
	return st, nil
}

func (c *conn) drop(e *list.Element) {
	c.lru.Remove(e)
	delete(c.byQuery, e.Value.(*cached).query)
}

// forgetIfStale drops a statement PostgreSQL no longer accepts: one a schema
// change made invalid ("cached plan must not change result type") or one
// that is gone from the session. The caller still gets the error (inside a
// transaction nothing can be retried); the next run prepares the text again.
func (c *conn) forgetIfStale(st *cached, err error) {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return
	}
	stale := pe.Code == "26000" || // invalid_sql_statement_name
		(pe.Code == "0A000" && strings.Contains(pe.Message, "cached plan must not change result type"))
	if !stale {
		return
	}
	if e, ok := c.byQuery[st.query]; ok && e.Value.(*cached) == st {
		c.drop(e)
	}
}

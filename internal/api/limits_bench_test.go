package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/testdb"
)

// BenchmarkHostileDocuments measures what a hostile document costs the
// whole server (authentication, parsing, validation, refusal), with the
// document limits off (as before issue 8) and at their defaults, against a
// small query in the same run. x_baseline is the time per request over the
// baseline's. Each request's document differs (a trailing comment), so no
// cache hides the work.
//
//	go test -run '^$' -bench HostileDocuments -benchtime 3x ./internal/api/
func BenchmarkHostileDocuments(b *testing.B) {
	db := testdb.New(b, dbmigrate.Migrator{})
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(client).CreateOrganization(ctx, "bench")
	require.NoError(b, err)
	key, _, err := auth.CreateAPIKey(ctx, client, org.ID, "bench", auth.RoleReadOnly)
	require.NoError(b, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := func(cfg api.Config) string {
		s, err := server.New(server.Config{GraphQL: api.NewHandler(cfg, client, logger), Logger: logger})
		require.NoError(b, err)
		srv := httptest.NewServer(s.Handler())
		b.Cleanup(srv.Close)
		return srv.URL + "/graphql"
	}
	unlimited := url(api.Config{MaxTokens: -1, MaxDepth: -1, MaxAliases: -1, MaxFields: -1})
	limited := url(api.Config{})

	aliases := func(n int) string {
		var sb strings.Builder
		sb.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&sb, "a%d: organization { id } ", i)
		}
		return sb.String() + "}"
	}
	docs := []struct{ name, query string }{
		{"6000-duplicate-fields", "{ organization { " + strings.Repeat("id ", 6000) + "} }"},
		{"5000-aliases", aliases(5000)},
		{"2000-duplicate-fields", "{ organization { " + strings.Repeat("id ", 2000) + "} }"},
		{"499-duplicate-fields-largest-allowed", "{ organization { " + strings.Repeat("id ", 499) + "} }"},
	}

	var baseline float64 // ns per request
	run := func(b *testing.B, url, query string) {
		for i := 0; b.Loop(); i++ {
			body, _ := json.Marshal(map[string]any{"query": fmt.Sprintf("%s # %d", query, i)})
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := http.DefaultClient.Do(req)
			require.NoError(b, err)
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	}
	perOp := func(b *testing.B, start time.Time) float64 {
		return float64(time.Since(start).Nanoseconds()) / float64(b.N)
	}
	b.Run("baseline", func(b *testing.B) {
		start := time.Now()
		run(b, limited, "{ organization { id } }")
		baseline = perOp(b, start)
	})
	for _, d := range docs {
		for _, v := range []struct{ name, url string }{{"unlimited", unlimited}, {"limited", limited}} {
			if v.name == "unlimited" && testing.Short() {
				continue
			}
			b.Run(d.name+"/"+v.name, func(b *testing.B) {
				start := time.Now()
				run(b, v.url, d.query)
				if baseline > 0 {
					b.ReportMetric(perOp(b, start)/baseline, "x_baseline")
				}
			})
		}
	}
}

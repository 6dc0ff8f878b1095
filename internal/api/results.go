package api

import (
	"log/slog"
	"net/http"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth/viewer"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/importer"
	"github.com/dirsync/dirsync/internal/jobs"
)

// ResultsPattern is the route of an import job's results CSV (M6).
const ResultsPattern = "GET /jobs/{id}/results.csv"

// Routes are the HTTP routes served next to /graphql.
func Routes(client *ent.Client, logger *slog.Logger) map[string]http.Handler {
	return map[string]http.Handler{ResultsPattern: ResultsCSV(client, logger)}
}

// ResultsCSV serves GET /jobs/{id}/results.csv with the same API keys as
// /graphql (read-only keys included). Another organization's job, a job that
// is not an import and an unknown id all answer 404: ids do not leak.
func ResultsCSV(client *ent.Client, logger *slog.Logger) http.Handler {
	// No public operation here (maxBody 0), and a portal session is an end
	// user: neither may download an organization's import results.
	return authenticate(client, logger, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, _ := viewer.FromContext(r.Context()); v.IsPortal() {
			writeError(w, http.StatusForbidden, gqlerr.Forbidden, "a portal session cannot download job results")
			return
		}
		id := pulid.ID(r.PathValue("id"))
		ok, err := client.Job.Query().Where(job.ID(id), job.Kind(jobs.JobImportUsers)).Exist(r.Context())
		if err != nil {
			logger.ErrorContext(r.Context(), "results csv: reading job", "err", err)
			writeError(w, http.StatusInternalServerError, gqlerr.Internal, "internal error")
			return
		}
		if !ok {
			writeError(w, http.StatusNotFound, gqlerr.NotFound, "no import job "+string(id))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="import-`+string(id)+`-results.csv"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if err := importer.WriteCSV(r.Context(), client, id, w); err != nil {
			// The status line is gone; a truncated body is all we can signal.
			logger.ErrorContext(r.Context(), "results csv: streaming", "job", string(id), "err", err)
		}
	}))
}

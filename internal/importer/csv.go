package importer

import (
	"context"
	"encoding/csv"
	"io"
	"strings"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// CSVHeader are the columns of a results CSV.
var CSVHeader = []string{"remote_id", "user_principal_name", "email", "username", "status", "message"}

// csvChunk rows are read per query while streaming.
const csvChunk = 2000

// WriteCSV streams the results of an import job, one row per remote user in
// the order they were processed, reading the items in chunks so a 100,000-user
// import never sits in memory. c must carry the caller's viewer (privacy).
func WriteCSV(ctx context.Context, c *ent.Client, jobID pulid.ID, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	var after pulid.ID
	for {
		q := c.JobItem.Query().Where(jobitem.JobID(jobID)).Order(ent.Asc(jobitem.FieldID)).Limit(csvChunk)
		if after != "" {
			q = q.Where(jobitem.IDGT(after))
		}
		items, err := q.All(ctx)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := cw.Write([]string{cell(it.RemoteID), cell(it.UserPrincipalName), cell(it.Email),
				cell(it.Username), cell(it.Result), cell(Message(it))}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if len(items) < csvChunk {
			return nil
		}
		after = items[len(items)-1].ID
	}
}

// cell defuses spreadsheet formulas: remote values (a UPN, a mail alias) are
// chosen by whoever manages the tenant, and a cell starting with = + - @ is
// run as a formula by Excel and friends. Such cells get a leading apostrophe.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

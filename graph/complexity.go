package graph

import (
	"entgo.io/contrib/entgql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/generated"
	"github.com/dirsync/dirsync/internal/importer"
)

// setComplexity makes a list cost its children times the number of rows it
// may return, so the complexity limit bounds the rows a query can load, not
// just its size. pageSize is what a connection returns without first/last.
func setComplexity(c *generated.ComplexityRoot, pageSize int) {
	rows := func(child int, first, last *int) int {
		n := pageSize
		if first != nil {
			n = *first
		} else if last != nil {
			n = *last
		}
		return 1 + child*max(n, 1)
	}
	type cursor = *entgql.Cursor[pulid.ID]
	c.Query.Users = func(child int, _ cursor, first *int, _ cursor, last *int, _ *ent.UserOrder, _ *ent.UserWhereInput) int {
		return rows(child, first, last)
	}
	c.Query.UserGroups = func(child int, _ cursor, first *int, _ cursor, last *int, _ *ent.UserGroupOrder, _ *ent.UserGroupWhereInput) int {
		return rows(child, first, last)
	}
	c.User.Groups = func(child int, _ cursor, first *int, _ cursor, last *int, _ *ent.UserGroupOrder, _ *ent.UserGroupWhereInput) int {
		return rows(child, first, last)
	}
	c.UserGroup.Members = func(child int, _ cursor, first *int, _ cursor, last *int, _ *ent.UserOrder, _ *ent.UserWhereInput) int {
		return rows(child, first, last)
	}
	c.Query.RemoteUsers = func(child int, _ pulid.ID, first *int, _ cursor, _ *importer.RemoteUserWhereInput) int {
		return rows(child, first, nil)
	}
	c.Query.Notifications = func(child int, _ cursor, first *int, _ cursor, last *int, _ *ent.NotificationOrder, _ *ent.NotificationWhereInput) int {
		return rows(child, first, last)
	}
	c.Query.Nodes = func(child int, ids []pulid.ID) int {
		return 1 + child*max(len(ids), 1)
	}
}

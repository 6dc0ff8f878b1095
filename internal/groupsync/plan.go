package groupsync

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// MailNickname derives the mailNickname of a group we create: the name's
// letters, digits, '-' and '_' (other runs become one '-'), then '-' and the
// last 8 characters of the link id, lower-cased. Graph does not require it
// unique for security groups, but the suffix makes it ours: a create whose
// answer was lost is recognised by it on the next try, so it is never
// created twice. It never changes on rename.
func MailNickname(name, linkID string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'):
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	suffix := strings.ToLower(linkID)
	if len(suffix) > 8 {
		suffix = suffix[len(suffix)-8:]
	}
	if max := 64 - 1 - len(suffix); len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	if base == "" {
		base = "group"
	}
	return base + "-" + suffix
}

// Hash fingerprints the properties we write on the remote group, so an
// unchanged group costs no PATCH.
func Hash(name, description string) string {
	s := sha256.Sum256([]byte(name + "\x00" + description))
	return hex.EncodeToString(s[:12])
}

// IsSecurityGroup: a plain security group, the only kind dirsync manages
// (I8). Mail-enabled security groups, distribution lists and Microsoft 365
// (unified) groups are never touched.
func IsSecurityGroup(g msgraph.Group) bool {
	if g.MailEnabled == nil || *g.MailEnabled || g.SecurityEnabled == nil || !*g.SecurityEnabled {
		return false
	}
	for _, t := range g.GroupTypes {
		if strings.EqualFold(t, "Unified") {
			return false
		}
	}
	return true
}

// Diff is the membership change one reconcile writes.
type Diff struct {
	Add, Remove []string
	// Foreign counts remote members that are not ours: left alone.
	Foreign int
}

// MembershipDiff compares the desired remote member ids (directory members
// provisioned in the integration) with the remote members. ours reports
// whether a remote id is an account we manage (linked to one of our users
// or put in the group by us): only those are ever removed. Ids compare
// case-insensitively; the results are lower-case, in desired/remote order.
func MembershipDiff(desired, remote []string, ours func(id string) bool) Diff {
	want := make(map[string]bool, len(desired))
	for _, id := range desired {
		want[strings.ToLower(id)] = true
	}
	have := make(map[string]bool, len(remote))
	var d Diff
	for _, id := range remote {
		id = strings.ToLower(id)
		if have[id] {
			continue
		}
		have[id] = true
		switch {
		case want[id]:
		case ours(id):
			d.Remove = append(d.Remove, id)
		default:
			d.Foreign++
		}
	}
	seen := make(map[string]bool, len(desired))
	for _, id := range desired {
		id = strings.ToLower(id)
		if !have[id] && !seen[id] {
			seen[id] = true
			d.Add = append(d.Add, id)
		}
	}
	return d
}

// Package importer imports the users of a Microsoft 365 tenant into the
// directory (SPEC M1–M7): the remoteUsers listing the API reads from Graph, the
// importUsers service that records the job, the worker's import handler that
// pages through the tenant and creates users a page per transaction, and the
// CSV of a job's results. See docs/import.md.
//
// This file holds the pure rules: which email and username a remote user gets
// (M3), which attributes are copied (M4, A1–A2).
package importer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/mapping"
)

// Result statuses of one remote user (GraphQL ImportStatus, JobItem.result).
const (
	StatusImported = "IMPORTED"
	StatusSkipped  = "SKIPPED"
	StatusFailed   = "FAILED"
)

// Messages of FAILED and SKIPPED rows; clients may show them as they are.
const (
	MsgEmailExists  = "email already exists in the directory"
	MsgUserLimit    = "user limit reached"
	MsgNotFound     = "not found in tenant"
	MsgDisabled     = "the account is disabled in Microsoft 365"
	MsgAlready      = "already in the directory"
	MsgOrphanLinked = "the remote user is still linked to a deleted directory user being deprovisioned"
)

// Remote is a remote user as an import reads it: the properties M3 needs and
// the raw object for the mapped attributes.
type Remote struct {
	ID           string
	UPN          string
	Mail         string
	MailNickname string
	DisplayName  string
	Enabled      bool
	Raw          map[string]any
}

// FromGraph reads a Graph user object. accountEnabled absent (not selected)
// counts as enabled: listings filter on it server-side.
func FromGraph(m map[string]any) Remote {
	s := func(k string) string { v, _ := m[k].(string); return strings.TrimSpace(v) }
	r := Remote{ID: s("id"), UPN: s("userPrincipalName"), Mail: s("mail"), MailNickname: s("mailNickname"),
		DisplayName: s("displayName"), Enabled: true, Raw: m}
	if b, ok := m["accountEnabled"].(bool); ok {
		r.Enabled = b
	}
	return r
}

// Email is the directory email of a remote user (M3): its mail, else its UPN.
func Email(r Remote) string {
	if r.Mail != "" {
		return r.Mail
	}
	return r.UPN
}

// BaseUsername is the username M3 asks for before collisions: the remote
// mailNickname when it is a valid username, else the local part of the email
// with the characters a username may not hold removed. "" when nothing usable
// is left.
func BaseUsername(r Remote) string {
	if r.MailNickname != "" && rules.Username(r.MailNickname) == nil {
		return r.MailNickname
	}
	local := Email(r)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	var b strings.Builder
	for _, c := range local {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case (c == '.' || c == '_' || c == '-') && b.Len() > 0:
			b.WriteRune(c)
		}
	}
	s := b.String()
	if len(s) > rules.MaxUsername {
		s = s[:rules.MaxUsername]
	}
	return s
}

// Suffixed is the n-th alternative (n ≥ 2) of a username taken by someone
// else: base-n, with base shortened so the result still fits.
func Suffixed(base string, n int) string {
	suf := fmt.Sprintf("-%d", n)
	if len(base)+len(suf) > rules.MaxUsername {
		base = strings.TrimRight(base[:rules.MaxUsername-len(suf)], ".-_")
	}
	return base + suf
}

// SelectProperties are the Graph properties an import reads: what M3 needs
// plus the top-level properties the import-flagged rules name, nothing else.
func SelectProperties(t mapping.Table) []string {
	sel := []string{"id", "userPrincipalName", "mail", "mailNickname", "displayName", "accountEnabled"}
	for _, r := range t {
		if !r.Import {
			continue
		}
		p, _, _ := strings.Cut(r.Property, ".")
		if !slices.Contains(sel, p) {
			sel = append(sel, p)
		}
	}
	return sel
}

// Attributes are the import-flagged attributes of a remote user (M4, A2),
// trimmed, without empty values, and without "email": the email comes from
// M3. Values the directory would refuse are left out and named in dropped.
func Attributes(t mapping.Table, r Remote, valid func(attr, value string) error) (attrs mapping.Attributes, dropped []string) {
	attrs = mapping.Attributes{}
	for attr, v := range t.Import(r.Raw) {
		v = strings.TrimSpace(v)
		if v == "" || attr == "email" {
			continue
		}
		if err := valid(attr, v); err != nil {
			dropped = append(dropped, fmt.Sprintf("%s not imported: %v", attr, err))
			continue
		}
		attrs[attr] = v
	}
	slices.Sort(dropped)
	return attrs, dropped
}

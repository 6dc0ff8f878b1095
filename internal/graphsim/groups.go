package graphsim

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxBind is how many members@odata.bind URLs one request may carry.
const maxBind = 20

func (t *tenant) newGroup(id string, created, visibleAt time.Time, props map[string]any) *object {
	g := &object{kind: kindGroup, id: id, props: props, created: created, visibleAt: visibleAt,
		memberSet: map[string]bool{}}
	g.props["id"] = id
	g.props["createdDateTime"] = created.UTC().Format(time.RFC3339)
	g.props["renewedDateTime"] = g.props["createdDateTime"]
	g.props["securityIdentifier"] = sidOf(id)
	g.props["proxyAddresses"] = []string{}
	g.props["creationOptions"] = []string{}
	g.props["resourceBehaviorOptions"] = []string{}
	g.props["resourceProvisioningOptions"] = []string{}
	if _, ok := g.props["groupTypes"]; !ok {
		g.props["groupTypes"] = []string{}
	}
	t.groups[id] = g
	t.touch(g)
	return g
}

// sidOf derives the S-1-12-1 security identifier Entra gives a cloud group.
func sidOf(id string) string {
	h := strings.ReplaceAll(id, "-", "")
	var parts [4]uint32
	for i := range parts {
		var v uint32
		fmt.Sscanf(h[i*8:i*8+8], "%08x", &v)
		parts[i] = v
	}
	return fmt.Sprintf("S-1-12-1-%d-%d-%d-%d", parts[0], parts[1], parts[2], parts[3])
}

func (t *tenant) addMember(g *object, id string) {
	g.members = append(g.members, id)
	g.memberSet[id] = true
	t.touch(g)
	g.memberLog = append(g.memberLog, memberEvent{seq: g.seq, id: id})
}

func (t *tenant) removeMember(g *object, id string) {
	for i, m := range g.members {
		if m == id {
			g.members = append(g.members[:i:i], g.members[i+1:]...)
			break
		}
	}
	delete(g.memberSet, id)
	t.touch(g)
	g.memberLog = append(g.memberLog, memberEvent{seq: g.seq, id: id, removed: true})
}

func (c *call) findGroup(id string) (*object, *graphError) {
	g := c.t.groups[strings.ToLower(id)]
	if g == nil || !g.visible(c.now) {
		return nil, notFound(id)
	}
	return g, nil
}

// findDirectoryObject resolves a member reference (user or group).
func (c *call) findDirectoryObject(id string) (*object, *graphError) {
	o := c.t.object(strings.ToLower(id))
	if o == nil || !o.visible(c.now) {
		return nil, notFound(id)
	}
	return o, nil
}

// refID extracts the object id from an @odata.id URL: any host, a path
// ending in directoryObjects/{id}, users/{id} or groups/{id}.
func refID(v any) (string, *graphError) {
	s, ok := v.(string)
	if !ok || s == "" {
		return "", badRequest("Invalid object identifier '" + literal(v) + "'.")
	}
	path := s
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", badRequest("Invalid object identifier '" + s + "'.")
		}
		path = rest[j:]
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if n := len(segs); n >= 2 {
		switch strings.ToLower(segs[n-2]) {
		case "directoryobjects", "users", "groups":
			return segs[n-1], nil
		}
	}
	return "", badRequest("Invalid object identifier '" + s + "'.")
}

func (c *call) listGroups() (*reply, *graphError) {
	lq, err := c.parseListQuery(groupDef)
	if err != nil {
		return nil, err
	}
	objs := make([]*object, 0, len(c.t.groups))
	for _, o := range c.t.groups {
		objs = append(objs, o)
	}
	return c.page(lq, objs, c.context("groups", lq.sel, false), false), nil
}

func (c *call) countGroups() (*reply, *graphError) { return c.count(groupDef, c.t.groups) }

func (c *call) getGroup() (*reply, *graphError) {
	expand, err := expandExtensions(c.query)
	if err != nil {
		return nil, err
	}
	if err := rejectOptions(c.query, "$select", "$expand"); err != nil {
		return nil, err
	}
	sel, err := parseSelect(c.query, groupDef)
	if err != nil {
		return nil, err
	}
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, err
	}
	body := g.render(sel)
	if expand {
		body["extensions"] = g.renderExtensions()
	}
	body["@odata.context"] = c.context("groups", sel, true)
	return jsonReply(http.StatusOK, body), nil
}

var requiredGroupProps = []string{"displayName", "mailEnabled", "mailNickname", "securityEnabled"}

func (c *call) createGroup() (*reply, *graphError) {
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	if err := checkProps(groupDef, body); err != nil {
		return nil, err
	}
	for _, p := range requiredGroupProps {
		if v, ok := body[p]; !ok || v == nil || v == "" {
			return nil, badRequest("Invalid value specified for property '"+p+"' of resource 'Group'.",
				ErrorDetail{Code: "Required", Target: p})
		}
	}
	if err := validateGroup(body); err != nil {
		return nil, err
	}
	unified := false
	if gt, ok := body["groupTypes"].([]any); ok {
		for _, v := range gt {
			switch v {
			case "Unified":
				unified = true
			case "DynamicMembership":
				return nil, badRequest("Dynamic membership groups are not supported by the emulator.")
			default:
				return nil, invalidValue("groupTypes", "Group")
			}
		}
	}
	mailEnabled, securityEnabled := body["mailEnabled"].(bool), body["securityEnabled"].(bool)
	switch {
	case unified && !mailEnabled:
		return nil, badRequest("A Unified group must be mail-enabled.")
	case !unified && mailEnabled:
		return nil, badRequest("Creating mail-enabled security groups or distribution groups through Microsoft Graph is not supported.")
	case !unified && !securityEnabled:
		return nil, invalidValue("securityEnabled", "Group")
	}
	members, err := c.bindTargets(body["members@odata.bind"], nil)
	if err != nil {
		return nil, err
	}
	draft := &object{kind: kindGroup, props: map[string]any{}}
	draft.apply(body)
	g := c.t.newGroup(c.s.newID(), c.now, c.now.Add(c.s.faults.ReplicationDelay), draft.props)
	if unified {
		mail := g.str("mailNickname") + "@" + c.t.initialDomain()
		g.props["mail"] = mail
		g.props["proxyAddresses"] = []string{"SMTP:" + mail}
		if _, ok := g.props["visibility"]; !ok {
			g.props["visibility"] = "Public"
		}
	}
	for _, m := range members {
		c.t.addMember(g, m.id)
	}
	out := g.render(nil)
	out["@odata.context"] = c.context("groups", nil, true)
	return jsonReply(http.StatusCreated, out), nil
}

func validateGroup(body map[string]any) *graphError {
	if v, ok := body["displayName"].(string); ok && (v == "" || len([]rune(v)) > 256) {
		return invalidValue("displayName", "Group")
	}
	if v, ok := body["mailNickname"].(string); ok && !validGroupNickname(v) {
		return invalidValue("mailNickname", "Group")
	}
	if v, ok := body["description"].(string); ok && len([]rune(v)) > 1024 {
		return invalidValue("description", "Group")
	}
	return nil
}

// bindTargets resolves members@odata.bind: at most 20 URLs, each an existing
// object not yet a member of g (nil for a new group) nor repeated; one bad
// URL fails the whole request.
func (c *call) bindTargets(v any, g *object) ([]*object, *graphError) {
	if v == nil {
		return nil, nil
	}
	urls, ok := v.([]any)
	if !ok {
		return nil, odataBadRequest("A node of type '" + nodeKind(v) + "' was read from the JSON reader when trying to read the contents of the property 'members@odata.bind'; however, a 'StartArray' node was expected.")
	}
	if len(urls) > maxBind {
		return nil, badRequest("The maximum number of members that can be added in a single request is 20.")
	}
	seen := map[string]bool{}
	var out []*object
	for _, u := range urls {
		id, err := refID(u)
		if err != nil {
			return nil, err
		}
		o, err := c.findDirectoryObject(id)
		if err != nil {
			return nil, err
		}
		if seen[o.id] || g != nil && g.memberSet[o.id] {
			return nil, badRequest(msgMemberExists)
		}
		seen[o.id] = true
		out = append(out, o)
	}
	return out, nil
}

func (c *call) updateGroup() (*reply, *graphError) {
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, err
	}
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	_, binds := body["members@odata.bind"]
	props := false
	for k := range body {
		if !strings.HasPrefix(k, "@odata.") && !strings.Contains(k, "@odata.bind") {
			props = true
		}
	}
	if props && !c.a.has(PermGroupReadWriteAll, PermDirectoryReadWriteAll) ||
		binds && !c.a.has(PermGroupMemberReadWriteAll, PermGroupReadWriteAll, PermDirectoryReadWriteAll) {
		return nil, denied()
	}
	if err := checkProps(groupDef, body); err != nil {
		return nil, err
	}
	for _, p := range requiredGroupProps {
		if v, ok := body[p]; ok && (v == nil || v == "") {
			return nil, invalidValue(p, "Group")
		}
	}
	if err := validateGroup(body); err != nil {
		return nil, err
	}
	for _, p := range []string{"mailEnabled", "securityEnabled", "groupTypes"} {
		if v, ok := body[p]; ok && fmt.Sprint(normalize(v)) != fmt.Sprint(g.props[p]) {
			return nil, badRequest("Property '" + p + "' cannot be changed on an existing group by the emulator.")
		}
	}
	members, err := c.bindTargets(body["members@odata.bind"], g)
	if err != nil {
		return nil, err
	}
	if g.apply(body) {
		c.t.touch(g)
	}
	for _, m := range members {
		c.t.addMember(g, m.id)
	}
	return noContent, nil
}

func (c *call) deleteGroup() (*reply, *graphError) {
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, err
	}
	delete(c.t.groups, g.id)
	c.t.bury(g, c.now)
	return noContent, nil
}

func (c *call) groupMembers() (*object, []*object, *graphError) {
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, nil, err
	}
	objs := make([]*object, 0, len(g.members))
	for _, id := range g.members {
		if o := c.t.object(id); o != nil {
			objs = append(objs, o)
		}
	}
	return g, objs, nil
}

func (c *call) listMembers() (*reply, *graphError) {
	lq, err := c.parseListQuery(userDef)
	if err != nil {
		return nil, err
	}
	_, objs, err := c.groupMembers()
	if err != nil {
		return nil, err
	}
	return c.page(lq, objs, c.context("directoryObjects", lq.sel, false), true), nil
}

func (c *call) countMembers() (*reply, *graphError) {
	_, objs, err := c.groupMembers()
	if err != nil {
		return nil, err
	}
	m := make(map[string]*object, len(objs))
	for _, o := range objs {
		m[o.id] = o
	}
	return c.count(userDef, m)
}

func (c *call) addMemberRef() (*reply, *graphError) {
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, err
	}
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	id, err := refID(body["@odata.id"])
	if err != nil {
		return nil, err
	}
	o, err := c.findDirectoryObject(id)
	if err != nil {
		return nil, err
	}
	if g.memberSet[o.id] {
		return nil, badRequest(msgMemberExists)
	}
	if o == g {
		return nil, badRequest("A group cannot be a member of itself.")
	}
	c.t.addMember(g, o.id)
	return noContent, nil
}

func (c *call) removeMemberRef() (*reply, *graphError) {
	g, err := c.findGroup(c.segs[1])
	if err != nil {
		return nil, err
	}
	o, err := c.findDirectoryObject(c.segs[3])
	if err != nil {
		return nil, err
	}
	if !g.memberSet[o.id] {
		return nil, badRequest(msgMemberAbsent)
	}
	c.t.removeMember(g, o.id)
	return noContent, nil
}

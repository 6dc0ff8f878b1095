package graphsim

import (
	"net/http"
	"strings"
	"time"
	"unicode"
)

// findUser resolves /users/{id|userPrincipalName}, honouring replication delay.
func (c *call) findUser(key string) (*object, *graphError) {
	var o *object
	if strings.Contains(key, "@") {
		o = c.t.upns[strings.ToLower(key)]
	} else {
		o = c.t.users[strings.ToLower(key)]
	}
	if o == nil || !o.visible(c.now) {
		return nil, notFound(key)
	}
	return o, nil
}

func (c *call) listUsers() (*reply, *graphError) {
	lq, err := c.parseListQuery(userDef)
	if err != nil {
		return nil, err
	}
	return c.page(lq, c.userCandidates(lq.filter), c.context("users", lq.sel, false), false), nil
}

// userCandidates narrows a list to the users a `userPrincipalName eq '…'` or
// `userPrincipalName in (…)` filter can match, through the UPN index: the
// provisioning lookups, which would otherwise scan the whole tenant under the
// lock on every call. page still applies the filter, visibility and paging, so
// answers are unchanged.
func (c *call) userCandidates(filter expr) []*object {
	var upns []lit
	switch x := filter.(type) {
	case cmpExpr:
		if x.op == "eq" && strings.EqualFold(x.prop, "userPrincipalName") {
			upns = []lit{x.val}
		}
	case inExpr:
		if strings.EqualFold(x.prop, "userPrincipalName") {
			upns = x.vals
		}
	}
	if upns != nil {
		var objs []*object
		seen := map[*object]bool{}
		for _, v := range upns {
			if v.kind != litString {
				continue
			}
			if o, ok := c.t.upns[strings.ToLower(v.s)]; ok && !seen[o] {
				seen[o] = true
				objs = append(objs, o)
			}
		}
		return objs
	}
	objs := make([]*object, 0, len(c.t.users))
	for _, o := range c.t.users {
		objs = append(objs, o)
	}
	return objs
}

// countUsers serves GET /users/$count (advanced mode only).
func (c *call) countUsers() (*reply, *graphError) {
	return c.count(userDef, c.t.users)
}

func (c *call) count(d *entityDef, objs map[string]*object) (*reply, *graphError) {
	if !c.eventual {
		return nil, badRequest("$count is not currently supported.")
	}
	if err := rejectOptions(c.query, "$filter", "$search"); err != nil {
		return nil, err
	}
	var filter expr
	if v := c.query.Get("$filter"); v != "" {
		e, err := parseFilter(v)
		if err != nil {
			return nil, err
		}
		if filter, err = checkFilter(e, d, true, false); err != nil {
			return nil, err
		}
	}
	var search []searchClause
	if v, ok := c.query["$search"]; ok {
		var err *graphError
		if search, err = parseSearch(v[0], d); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, o := range objs {
		if o.visible(c.now) && (filter == nil || matches(filter, o)) && (search == nil || searchMatches(search, o)) {
			n++
		}
	}
	return &reply{status: http.StatusOK, text: itoa(n)}, nil
}

func (c *call) getUser() (*reply, *graphError) {
	expand, err := expandExtensions(c.query)
	if err != nil {
		return nil, err
	}
	if err := rejectOptions(c.query, "$select", "$expand"); err != nil {
		return nil, err
	}
	sel, err := parseSelect(c.query, userDef)
	if err != nil {
		return nil, err
	}
	o, err := c.findUser(c.segs[1])
	if err != nil {
		return nil, err
	}
	body := o.render(sel)
	if expand {
		body["extensions"] = o.renderExtensions()
	}
	body["@odata.context"] = c.context("users", sel, true)
	return jsonReply(http.StatusOK, body), nil
}

var requiredUserProps = []string{"accountEnabled", "displayName", "mailNickname", "userPrincipalName"}

func (c *call) createUser() (*reply, *graphError) {
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	if err := checkProps(userDef, body); err != nil {
		return nil, err
	}
	for _, p := range requiredUserProps {
		if v, ok := body[p]; !ok || v == nil || v == "" {
			return nil, badRequest("Invalid value specified for property '"+p+"' of resource 'User'.",
				ErrorDetail{Code: "Required", Target: p})
		}
	}
	pp, _ := body["passwordProfile"].(map[string]any)
	pw, _ := pp["password"].(string)
	if pw == "" {
		return nil, badRequest(msgPasswordRequired)
	}
	if err := c.validateUser(nil, body); err != nil {
		return nil, err
	}
	u := &object{kind: kindUser, id: c.s.newID(), props: map[string]any{}, created: c.now,
		visibleAt: c.now.Add(c.s.faults.ReplicationDelay)}
	u.apply(body)
	u.props["id"] = u.id
	u.props["createdDateTime"] = c.now.UTC().Format(time.RFC3339)
	u.props["userType"] = "Member"
	u.props["proxyAddresses"] = []string{}
	if m, ok := u.props["mail"].(string); ok && m != "" {
		u.props["proxyAddresses"] = []string{"SMTP:" + m}
	}
	c.setPassword(u, pw)
	c.t.users[u.id] = u
	c.t.upns[strings.ToLower(u.str("userPrincipalName"))] = u
	c.t.touch(u)
	out := u.render(nil)
	out["@odata.context"] = c.context("users", nil, true)
	return jsonReply(http.StatusCreated, out), nil
}

func (c *call) setPassword(u *object, pw string) {
	u.password = pw
	u.props["lastPasswordChangeDateTime"] = c.now.UTC().Format(time.RFC3339)
}

func (c *call) updateUser() (*reply, *graphError) {
	u, err := c.findUser(c.segs[1])
	if err != nil {
		return nil, err
	}
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	if err := checkProps(userDef, body); err != nil {
		return nil, err
	}
	var pw string
	if v, ok := body["passwordProfile"]; ok && v != nil {
		if !c.a.has(PermUserPasswordProfileReadWrite) || !c.a.userAdmin {
			return nil, denied()
		}
		pp, _ := v.(map[string]any)
		pw, _ = pp["password"].(string)
	}
	for _, p := range requiredUserProps {
		if v, ok := body[p]; ok && (v == nil || v == "") {
			return nil, invalidValue(p, "User")
		}
	}
	if err := c.validateUser(u, body); err != nil {
		return nil, err
	}
	oldUPN := strings.ToLower(u.str("userPrincipalName"))
	u.apply(body)
	if m, ok := body["mail"]; ok {
		if s, _ := m.(string); s != "" {
			u.props["proxyAddresses"] = []string{"SMTP:" + s}
		} else {
			u.props["proxyAddresses"] = []string{}
		}
	}
	if pw != "" {
		c.setPassword(u, pw)
	}
	if nu := strings.ToLower(u.str("userPrincipalName")); nu != oldUPN {
		delete(c.t.upns, oldUPN)
		c.t.upns[nu] = u
	}
	c.t.touch(u)
	return noContent, nil
}

func (c *call) deleteUser() (*reply, *graphError) {
	u, err := c.findUser(c.segs[1])
	if err != nil {
		return nil, err
	}
	delete(c.t.users, u.id)
	delete(c.t.upns, strings.ToLower(u.str("userPrincipalName")))
	c.t.bury(u, c.now)
	return noContent, nil
}

// validateUser checks the values of a create (u == nil) or update body.
func (c *call) validateUser(u *object, body map[string]any) *graphError {
	if v, ok := body["displayName"].(string); ok && len([]rune(v)) > 256 {
		return invalidValue("displayName", "User")
	}
	upn := ""
	if u != nil {
		upn = u.str("userPrincipalName")
	}
	if v, ok := body["userPrincipalName"].(string); ok {
		if err := c.checkUPN(v); err != nil {
			return err
		}
		if other := c.t.upns[strings.ToLower(v)]; other != nil && other != u {
			return badRequest(msgUPNConflict, ErrorDetail{Code: "ObjectConflict", Target: "userPrincipalName"})
		}
		upn = v
	}
	if v, ok := body["mailNickname"].(string); ok && !validUserNickname(v) {
		return invalidValue("mailNickname", "User")
	}
	if v, ok := body["usageLocation"].(string); ok && !validCountry(v) {
		return invalidValue("usageLocation", "User")
	}
	if v, ok := body["passwordPolicies"].(string); ok && !validPasswordPolicies(v) {
		return invalidValue("passwordPolicies", "User")
	}
	if v, ok := body["mail"].(string); ok && v != "" {
		if !strings.Contains(v, "@") {
			return invalidValue("mail", "User")
		}
		for _, o := range c.t.users {
			if o != u && strings.EqualFold(o.str("mail"), v) {
				return badRequest("Another object with the same value for property proxyAddresses already exists.",
					ErrorDetail{Code: "ObjectConflict", Target: "proxyAddresses"})
			}
		}
	}
	if pp, ok := body["passwordProfile"].(map[string]any); ok {
		for k := range pp {
			switch k {
			case "password", "forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa":
			default:
				return badRequest("Property '" + k + "' does not exist as a declared property or extension property.")
			}
		}
		if pw, ok := pp["password"].(string); ok {
			given, sur := strOr(body, "givenName", u), strOr(body, "surname", u)
			if !strongPassword(pw, upn, given, sur) {
				return badRequest(msgWeakPassword)
			}
		} else if pp["password"] != nil {
			return odataBadRequest("Cannot convert the literal '" + literal(pp["password"]) + "' to the expected type 'Edm.String'.")
		}
	}
	return nil
}

func strOr(body map[string]any, k string, u *object) string {
	if v, ok := body[k].(string); ok {
		return v
	}
	if u != nil {
		return u.str(k)
	}
	return ""
}

// checkUPN enforces Entra's userPrincipalName rules: the character set and
// lengths of GRAPH.md, and a verified domain of the tenant.
func (c *call) checkUPN(upn string) *graphError {
	local, dom, ok := strings.Cut(upn, "@")
	if !ok || strings.Contains(dom, "@") || local == "" || dom == "" || len(local) > 64 || len(upn) > 113 ||
		strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return invalidValue("userPrincipalName", "User")
	}
	for _, r := range local {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("'.-_!#^~", r))) {
			return invalidValue("userPrincipalName", "User")
		}
	}
	d := c.t.findDomain(dom)
	if d == nil || !d.verified {
		return badRequest(msgUPNDomain)
	}
	if !d.initial && len(dom) > 48 {
		return invalidValue("userPrincipalName", "User")
	}
	return nil
}

// validUserNickname: at most 64 ASCII characters, none of @ ( ) \ [ ] " ; : < > , or space,
// no leading, trailing or doubled period.
func validUserNickname(s string) bool {
	if s == "" || len(s) > 64 || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= unicode.MaxASCII || strings.ContainsRune(`@()\[]";:<>,`, r) {
			return false
		}
	}
	return true
}

// validGroupNickname: as for users, and no period either (GRAPH.md).
func validGroupNickname(s string) bool {
	return validUserNickname(s) && !strings.Contains(s, ".")
}

func validCountry(s string) bool {
	if len(s) != 2 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' && r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

func validPasswordPolicies(s string) bool {
	if s == "" || strings.EqualFold(s, "None") {
		return true
	}
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "DisablePasswordExpiration", "DisableStrongPassword":
		default:
			return false
		}
	}
	return true
}

// strongPassword applies Entra's complexity rules (GRAPH.md "Password policy").
func strongPassword(pw, upn, given, sur string) bool {
	if len(pw) < 8 || len(pw) > 256 {
		return false
	}
	var lower, upper, digit, symbol bool
	for _, r := range pw {
		switch {
		case r >= unicode.MaxASCII || r < ' ':
			return false
		case 'a' <= r && r <= 'z':
			lower = true
		case 'A' <= r && r <= 'Z':
			upper = true
		case '0' <= r && r <= '9':
			digit = true
		default:
			symbol = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, symbol} {
		if b {
			classes++
		}
	}
	if classes < 3 {
		return false
	}
	lp := strings.ToLower(pw)
	local, _, _ := strings.Cut(upn, "@")
	for _, part := range []string{local, given, sur} {
		if len(part) >= 3 && strings.Contains(lp, strings.ToLower(part)) {
			return false
		}
	}
	return true
}

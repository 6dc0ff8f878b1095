package graphsim

import (
	"encoding/json"
	"strings"
)

type ptype int

const (
	pString ptype = iota
	pBool
	pStrings
	pObject
	pDateTime
)

func (t ptype) edm() string {
	switch t {
	case pBool:
		return "Edm.Boolean"
	case pStrings:
		return "Collection(Edm.String)"
	case pObject:
		return "Edm.ComplexType"
	case pDateTime:
		return "Edm.DateTimeOffset"
	}
	return "Edm.String"
}

// filterLevel says which $filter operators a property takes.
type filterLevel int

const (
	fNone  filterLevel = iota // not filterable
	fBasic                    // eq, in, startsWith by default; the rest in advanced mode
	fAdv                      // only in advanced mode
)

// lambdaLevel says what an any() lambda may test on a string collection.
type lambdaLevel int

const (
	lambdaNone       lambdaLevel = iota
	lambdaEq                     // eq, in (ne in advanced mode)
	lambdaStartsWith             // and startsWith (endsWith in advanced mode where endsWith is set)
)

type propDef struct {
	lambda   lambdaLevel // collections: any() support
	typ      ptype
	readOnly bool
	filter   filterLevel
	endsWith bool // endsWith allowed (advanced mode)
	search   bool // usable in $search
	orderBy  bool // $orderby without advanced mode
	hidden   bool // write-only: always read back as null
}

type entityDef struct {
	kind     objKind
	typeName string // microsoft.graph.user
	resource string // User, in messages
	set      string // users
	props    map[string]propDef
	defaults []string // properties returned without $select
}

var userDef = &entityDef{
	kind: kindUser, typeName: "microsoft.graph.user", resource: "User", set: "users",
	props: map[string]propDef{
		"id":                         {typ: pString, readOnly: true, filter: fBasic},
		"accountEnabled":             {typ: pBool, filter: fBasic},
		"ageGroup":                   {typ: pString, filter: fBasic},
		"businessPhones":             {typ: pStrings, filter: fAdv, lambda: lambdaEq},
		"city":                       {typ: pString, filter: fBasic},
		"companyName":                {typ: pString, filter: fBasic},
		"country":                    {typ: pString, filter: fBasic},
		"createdDateTime":            {typ: pDateTime, readOnly: true, filter: fAdv},
		"creationType":               {typ: pString, readOnly: true, filter: fBasic},
		"deletedDateTime":            {typ: pDateTime, readOnly: true},
		"department":                 {typ: pString, filter: fBasic},
		"displayName":                {typ: pString, filter: fBasic, search: true, orderBy: true},
		"employeeHireDate":           {typ: pDateTime, filter: fAdv},
		"employeeId":                 {typ: pString, filter: fBasic},
		"employeeOrgData":            {typ: pObject},
		"employeeType":               {typ: pString, filter: fBasic},
		"externalUserState":          {typ: pString, readOnly: true, filter: fBasic},
		"faxNumber":                  {typ: pString, filter: fBasic},
		"givenName":                  {typ: pString, filter: fBasic, search: true},
		"jobTitle":                   {typ: pString, filter: fBasic},
		"lastPasswordChangeDateTime": {typ: pDateTime, readOnly: true},
		"mail":                       {typ: pString, filter: fBasic, endsWith: true, search: true},
		"mailNickname":               {typ: pString, filter: fBasic, search: true},
		"mobilePhone":                {typ: pString, filter: fBasic},
		"officeLocation":             {typ: pString, filter: fBasic},
		"onPremisesImmutableId":      {typ: pString, filter: fBasic},
		"otherMails":                 {typ: pStrings, filter: fAdv, endsWith: true, lambda: lambdaStartsWith},
		"passwordPolicies":           {typ: pString, filter: fAdv},
		"passwordProfile":            {typ: pObject, hidden: true},
		"postalCode":                 {typ: pString, filter: fBasic},
		"preferredLanguage":          {typ: pString, filter: fBasic},
		"proxyAddresses":             {typ: pStrings, readOnly: true, filter: fAdv, endsWith: true, lambda: lambdaStartsWith},
		"showInAddressList":          {typ: pBool},
		"state":                      {typ: pString, filter: fBasic},
		"streetAddress":              {typ: pString, filter: fBasic},
		"surname":                    {typ: pString, filter: fBasic, search: true},
		"usageLocation":              {typ: pString, filter: fBasic},
		"userPrincipalName":          {typ: pString, filter: fBasic, endsWith: true, search: true, orderBy: true},
		"userType":                   {typ: pString, filter: fBasic},
	},
	defaults: []string{"businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
		"officeLocation", "preferredLanguage", "surname", "userPrincipalName"},
}

var groupDef = &entityDef{
	kind: kindGroup, typeName: "microsoft.graph.group", resource: "Group", set: "groups",
	props: map[string]propDef{
		"id":                            {typ: pString, readOnly: true, filter: fBasic},
		"classification":                {typ: pString, filter: fBasic},
		"createdDateTime":               {typ: pDateTime, readOnly: true, filter: fAdv},
		"creationOptions":               {typ: pStrings, readOnly: true},
		"deletedDateTime":               {typ: pDateTime, readOnly: true},
		"description":                   {typ: pString, filter: fAdv, search: true},
		"displayName":                   {typ: pString, filter: fBasic, search: true, orderBy: true},
		"expirationDateTime":            {typ: pDateTime, readOnly: true},
		"groupTypes":                    {typ: pStrings, filter: fAdv},
		"isAssignableToRole":            {typ: pBool, filter: fBasic},
		"mail":                          {typ: pString, readOnly: true, filter: fBasic, endsWith: true, search: true},
		"mailEnabled":                   {typ: pBool, filter: fBasic},
		"mailNickname":                  {typ: pString, filter: fBasic, search: true},
		"membershipRule":                {typ: pString, filter: fBasic},
		"membershipRuleProcessingState": {typ: pString, filter: fBasic},
		"onPremisesSyncEnabled":         {typ: pBool, readOnly: true, filter: fBasic},
		"preferredDataLocation":         {typ: pString, filter: fBasic},
		"preferredLanguage":             {typ: pString, filter: fBasic},
		"proxyAddresses":                {typ: pStrings, readOnly: true, filter: fAdv, endsWith: true, lambda: lambdaStartsWith},
		"renewedDateTime":               {typ: pDateTime, readOnly: true},
		"resourceBehaviorOptions":       {typ: pStrings},
		"resourceProvisioningOptions":   {typ: pStrings, readOnly: true},
		"securityEnabled":               {typ: pBool, filter: fBasic},
		"securityIdentifier":            {typ: pString, readOnly: true, filter: fBasic},
		"theme":                         {typ: pString},
		"visibility":                    {typ: pString},
	},
	defaults: []string{"id", "deletedDateTime", "classification", "createdDateTime", "creationOptions",
		"description", "displayName", "expirationDateTime", "groupTypes", "isAssignableToRole", "mail",
		"mailEnabled", "mailNickname", "membershipRule", "membershipRuleProcessingState",
		"onPremisesSyncEnabled", "preferredDataLocation", "preferredLanguage", "proxyAddresses",
		"renewedDateTime", "resourceBehaviorOptions", "resourceProvisioningOptions", "securityEnabled",
		"securityIdentifier", "theme", "visibility"},
}

func defOf(k objKind) *entityDef {
	if k == kindGroup {
		return groupDef
	}
	return userDef
}

// canonical finds a property by name, case-insensitively as OData does for
// query options (JSON bodies are matched exactly).
func (d *entityDef) canonical(name string) (string, propDef, bool) {
	if p, ok := d.props[name]; ok {
		return name, p, true
	}
	for n, p := range d.props {
		if strings.EqualFold(n, name) {
			return n, p, true
		}
	}
	return "", propDef{}, false
}

func (d *entityDef) noSuchProperty(name string) *graphError {
	return badRequest("Could not find a property named '" + name + "' on type '" + d.typeName + "'.")
}

// render returns the object's properties listed in sel (nil: the defaults).
func (o *object) render(sel []string) map[string]any {
	d := defOf(o.kind)
	if sel == nil {
		sel = d.defaults
	}
	m := make(map[string]any, len(sel)+1)
	for _, p := range sel {
		def := d.props[p]
		v, ok := o.props[p]
		switch {
		case def.hidden:
			v = nil
		case !ok && def.typ == pStrings:
			v = []string{}
		}
		m[p] = v
	}
	return m
}

// checkValue validates a JSON value against a property's type.
func checkValue(name string, def propDef, v any) *graphError {
	bad := func(lit string) *graphError {
		return odataBadRequest("Cannot convert the literal '" + lit + "' to the expected type '" + def.typ.edm() + "'.")
	}
	if v == nil {
		return nil
	}
	switch def.typ {
	case pString, pDateTime:
		if _, ok := v.(string); !ok {
			return bad(literal(v))
		}
	case pBool:
		if _, ok := v.(bool); !ok {
			return bad(literal(v))
		}
	case pStrings:
		arr, ok := v.([]any)
		if !ok {
			return odataBadRequest("A node of type '" + nodeKind(v) + "' was read from the JSON reader when trying to read the contents of the property '" + name + "'; however, a 'StartArray' node was expected.")
		}
		for _, e := range arr {
			if _, ok := e.(string); !ok {
				return bad(literal(e))
			}
		}
	case pObject:
		if _, ok := v.(map[string]any); !ok {
			return odataBadRequest("A node of type '" + nodeKind(v) + "' was read from the JSON reader when trying to read the contents of the property '" + name + "'; however, a 'StartObject' node was expected.")
		}
	}
	return nil
}

func literal(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func nodeKind(v any) string {
	switch v.(type) {
	case []any:
		return "StartArray"
	case map[string]any:
		return "StartObject"
	}
	return "PrimitiveValue"
}

// normalize turns a decoded JSON value into what the store keeps.
func normalize(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	case json.Number:
		return x.String()
	}
	return v
}

// checkProps validates the keys and value types of a POST/PATCH body.
func checkProps(d *entityDef, body map[string]any) *graphError {
	for k, v := range body {
		if strings.HasPrefix(k, "@odata.") || strings.Contains(k, "@odata.bind") {
			continue
		}
		def, ok := d.props[k]
		if !ok {
			return badRequest("Property '" + k + "' does not exist as a declared property or extension property.")
		}
		if def.readOnly {
			return badRequest("Property '" + k + "' is read-only and cannot be set.")
		}
		if err := checkValue(k, def, v); err != nil {
			return err
		}
	}
	return nil
}

// context is the @odata.context of an answer about entity set set.
func (c *call) context(set string, sel []string, single bool) string {
	ctx := c.base + "/$metadata#" + set
	if sel != nil {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	if single {
		ctx += "/$entity"
	}
	return ctx
}

package graphsim

import (
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Open extensions (microsoft.graph.openTypeExtension) on users and groups:
// untyped properties an app stores on a directory object under a name of
// its own (dirsync's ownership marker, com.dirsync.owner). As in Graph the
// extension's id is its extensionName; creating one that exists answers
// 409 NameAlreadyExists; PATCH replaces the custom properties it names;
// GET /users/{id}?$expand=extensions lists them. Writes to an extension do
// not show in the object's delta.

const (
	openTypeExtension = "microsoft.graph.openTypeExtension"
	codeNameExists    = "NameAlreadyExists"
)

// extensionRoute routes /{users|groups}/{id}/extensions[/{name}].
func (c *call) extensionRoute(read, write []string) (route, *graphError) {
	segs, m := c.segs, c.r.Method
	switch len(segs) {
	case 3:
		switch m {
		case http.MethodGet:
			return route{handle: (*call).listExtensions, ru: 1, perms: read}, nil
		case http.MethodPost:
			return route{handle: (*call).createExtension, write: true, ru: 1, perms: write}, nil
		}
	case 4:
		switch m {
		case http.MethodGet:
			return route{handle: (*call).getExtension, ru: 1, perms: read}, nil
		case http.MethodPatch:
			return route{handle: (*call).updateExtension, write: true, ru: 1, perms: write}, nil
		case http.MethodDelete:
			return route{handle: (*call).deleteExtension, write: true, ru: 1, perms: write}, nil
		}
	default:
		return route{}, segmentNotFound(segs[len(segs)-1])
	}
	return route{}, methodNotAllowed()
}

// extOwner finds the user or group an extension call is about.
func (c *call) extOwner() (*object, *graphError) {
	if strings.EqualFold(c.segs[0], "groups") {
		return c.findGroup(c.segs[1])
	}
	return c.findUser(c.segs[1])
}

// extName finds the stored name of an extension case-insensitively, as
// Graph matches extension ids.
func extName(o *object, name string) (string, bool) {
	for k := range o.ext {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

func renderExtension(name string, props map[string]any) map[string]any {
	out := maps.Clone(props)
	out["@odata.type"] = "#" + openTypeExtension
	out["extensionName"] = name
	out["id"] = name
	return out
}

func (c *call) extensionContext(o *object) string {
	return c.base + "/$metadata#" + strings.ToLower(c.segs[0]) + "('" + o.id + "')/extensions"
}

func (c *call) listExtensions() (*reply, *graphError) {
	o, err := c.extOwner()
	if err != nil {
		return nil, err
	}
	return jsonReply(http.StatusOK, map[string]any{"@odata.context": c.extensionContext(o), "value": o.renderExtensions()}), nil
}

func (o *object) renderExtensions() []map[string]any {
	out := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(o.ext)) {
		out = append(out, renderExtension(name, o.ext[name]))
	}
	return out
}

// namedExtension is the user or group of the path and the name of its
// extension segs[3] names (404 when it has none by that name).
func (c *call) namedExtension() (*object, string, *graphError) {
	o, err := c.extOwner()
	if err != nil {
		return nil, "", err
	}
	name, ok := extName(o, c.segs[3])
	if !ok {
		return nil, "", notFound(c.segs[3])
	}
	return o, name, nil
}

func (c *call) getExtension() (*reply, *graphError) {
	o, name, err := c.namedExtension()
	if err != nil {
		return nil, err
	}
	body := renderExtension(name, o.ext[name])
	body["@odata.context"] = c.extensionContext(o) + "/$entity"
	return jsonReply(http.StatusOK, body), nil
}

// customProps checks an extension body and returns its custom properties.
func customProps(body map[string]any, create bool) (string, map[string]any, *graphError) {
	name, _ := body["extensionName"].(string)
	typ, _ := body["@odata.type"].(string)
	if create && strings.TrimPrefix(typ, "#") != openTypeExtension {
		return "", nil, badRequest("Property '@odata.type' must be '" + openTypeExtension + "' for an open extension.")
	}
	if create && strings.TrimSpace(name) == "" {
		return "", nil, badRequest("Property 'extensionName' is required.")
	}
	out := map[string]any{}
	for k, v := range body {
		switch k {
		case "@odata.type", "extensionName", "id":
			continue
		}
		if strings.Contains(k, "@") {
			continue
		}
		out[k] = normalize(v)
	}
	return name, out, nil
}

func (c *call) createExtension() (*reply, *graphError) {
	o, err := c.extOwner()
	if err != nil {
		return nil, err
	}
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	name, props, err := customProps(body, true)
	if err != nil {
		return nil, err
	}
	if _, exists := extName(o, name); exists {
		return nil, gerr(http.StatusConflict, codeNameExists, "An extension already exists with given id.")
	}
	if o.ext == nil {
		o.ext = map[string]map[string]any{}
	}
	o.ext[name] = props
	out := renderExtension(name, props)
	out["@odata.context"] = c.extensionContext(o) + "/$entity"
	return jsonReply(http.StatusCreated, out), nil
}

func (c *call) updateExtension() (*reply, *graphError) {
	o, name, err := c.namedExtension()
	if err != nil {
		return nil, err
	}
	body, err := c.decodeBody()
	if err != nil {
		return nil, err
	}
	_, props, err := customProps(body, false)
	if err != nil {
		return nil, err
	}
	for k, v := range props {
		if v == nil {
			delete(o.ext[name], k)
			continue
		}
		o.ext[name][k] = v
	}
	return noContent, nil
}

func (c *call) deleteExtension() (*reply, *graphError) {
	o, name, err := c.namedExtension()
	if err != nil {
		return nil, err
	}
	delete(o.ext, name)
	return noContent, nil
}

// expandExtensions handles $expand=extensions on GET of one user or group;
// any other $expand is refused as before. ok: the caller adds the extensions.
func expandExtensions(q map[string][]string) (ok bool, err *graphError) {
	v, present := q["$expand"]
	if !present {
		return false, nil
	}
	if len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "extensions") {
		return true, nil
	}
	return false, badRequest("Parsing OData Select and Expand failed: only $expand=extensions is supported by this endpoint of the emulator.")
}

package msgraph

import (
	"context"
	"maps"
	"net/http"
)

// Open extensions (openTypeExtension) on users and groups: untyped
// properties an app keeps on a directory object under its own name. dirsync
// stores its ownership marker in one. collection is "users" or "groups".
// https://learn.microsoft.com/graph/api/resources/opentypeextension?view=graph-rest-1.0

// GetExtension reads the custom properties of the named extension; a
// missing one answers a 404 error (IsNotFound).
// https://learn.microsoft.com/graph/api/opentypeextension-get?view=graph-rest-1.0
func (c *Client) GetExtension(ctx context.Context, collection, id, name string) (map[string]any, error) {
	return roundtrip[map[string]any](ctx, c, call{method: http.MethodGet,
		path: "/" + collection + "/" + seg(id) + "/extensions/" + seg(name), fresh: c.isFresh(id)})
}

// CreateExtension adds the named extension with props; one that exists
// answers 409 NameAlreadyExists (IsNameExists).
// https://learn.microsoft.com/graph/api/opentypeextension-post-opentypeextension?view=graph-rest-1.0
func (c *Client) CreateExtension(ctx context.Context, collection, id, name string, props map[string]any) error {
	body := maps.Clone(props)
	if body == nil {
		body = map[string]any{}
	}
	body["@odata.type"] = "microsoft.graph.openTypeExtension"
	body["extensionName"] = name
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPost,
		path: "/" + collection + "/" + seg(id) + "/extensions", body: body, fresh: c.isFresh(id)})
	return err
}

// UpdateExtension sets the custom properties in props (null clears one).
// https://learn.microsoft.com/graph/api/opentypeextension-update?view=graph-rest-1.0
func (c *Client) UpdateExtension(ctx context.Context, collection, id, name string, props map[string]any) error {
	body := maps.Clone(props)
	body["@odata.type"] = "microsoft.graph.openTypeExtension"
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodPatch,
		path: "/" + collection + "/" + seg(id) + "/extensions/" + seg(name), body: body, fresh: c.isFresh(id)})
	return err
}

// DeleteExtension removes the named extension.
// https://learn.microsoft.com/graph/api/opentypeextension-delete?view=graph-rest-1.0
func (c *Client) DeleteExtension(ctx context.Context, collection, id, name string) error {
	_, err := roundtrip[struct{}](ctx, c, call{method: http.MethodDelete,
		path: "/" + collection + "/" + seg(id) + "/extensions/" + seg(name), fresh: c.isFresh(id)})
	return err
}

// IsNameExists reports 409 NameAlreadyExists: the extension exists already.
func IsNameExists(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusConflict
}

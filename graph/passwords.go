package graph

import (
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/passwords"
)

// passwords returns the password service, or UNAVAILABLE where the server was
// built without one.
func (r *Resolver) passwords() (*passwords.Service, error) {
	if r.pw == nil {
		return nil, gqlerr.Newf(gqlerr.Unavailable, "", "passwords and the portal are not configured on this server")
	}
	return r.pw, nil
}

func sessionPayload(s *passwords.Session, err error) (*model.PortalSessionPayload, error) {
	if err != nil {
		return nil, err
	}
	return &model.PortalSessionPayload{Token: s.Token, ExpiresAt: s.ExpiresAt, User: s.User}, nil
}

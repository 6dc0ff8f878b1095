package graphsim

import (
	"fmt"
	"net/http"
	"strings"
)

// Edits a tenant's own administrator makes in the Entra admin center, behind
// dirsync's back: they change the directory like any Graph write does (delta
// sees them, memberships and tombstones included) but cost no throttle
// budget and are not in the request log, since no app made them. Drift
// tests use them to play that administrator.

// AdminUpdateUser sets (nil: clears) declared user properties of the user
// with this id or UPN.
func (s *Sim) AdminUpdateUser(tenantID, idOrUPN string, props map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, u, err := s.adminUser(tenantID, idOrUPN)
	if err != nil {
		return err
	}
	oldUPN := strings.ToLower(u.str("userPrincipalName"))
	if !u.apply(props) {
		return fmt.Errorf("graphsim: no declared user property in %v", props)
	}
	if n := strings.ToLower(u.str("userPrincipalName")); n != oldUPN {
		delete(t.upns, oldUPN)
		t.upns[n] = u
	}
	t.touch(u)
	return nil
}

// AdminDeleteUser deletes the user (to deleted items, as Graph does).
func (s *Sim) AdminDeleteUser(tenantID, idOrUPN string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, u, err := s.adminUser(tenantID, idOrUPN)
	if err != nil {
		return err
	}
	delete(t.users, u.id)
	delete(t.upns, strings.ToLower(u.str("userPrincipalName")))
	t.bury(u, s.now())
	return nil
}

// AdminUpdateGroup sets declared group properties.
func (s *Sim) AdminUpdateGroup(tenantID, groupID string, props map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, g, err := s.adminGroup(tenantID, groupID)
	if err != nil {
		return err
	}
	if !g.apply(props) {
		return fmt.Errorf("graphsim: no declared group property in %v", props)
	}
	t.touch(g)
	return nil
}

// AdminDeleteGroup deletes the group for good (security groups are not
// restorable).
func (s *Sim) AdminDeleteGroup(tenantID, groupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, g, err := s.adminGroup(tenantID, groupID)
	if err != nil {
		return err
	}
	delete(t.groups, g.id)
	t.bury(g, s.now())
	return nil
}

// AdminAddMember adds a user or group to the group; one already there is an error.
func (s *Sim) AdminAddMember(tenantID, groupID, memberID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, g, err := s.adminGroup(tenantID, groupID)
	if err != nil {
		return err
	}
	if t.object(memberID) == nil {
		return fmt.Errorf("graphsim: no object %s in tenant %s", memberID, tenantID)
	}
	if g.memberSet[memberID] {
		return fmt.Errorf("graphsim: %s is already a member of %s", memberID, groupID)
	}
	t.addMember(g, memberID)
	return nil
}

// AdminRemoveMember removes a member from the group.
func (s *Sim) AdminRemoveMember(tenantID, groupID, memberID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, g, err := s.adminGroup(tenantID, groupID)
	if err != nil {
		return err
	}
	if !g.memberSet[memberID] {
		return fmt.Errorf("graphsim: %s is not a member of %s", memberID, groupID)
	}
	t.removeMember(g, memberID)
	return nil
}

func (s *Sim) adminTenant(tenantID string) (*tenant, error) {
	t := s.tenants[tenantID]
	if t == nil {
		return nil, fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	return t, nil
}

func (s *Sim) adminUser(tenantID, key string) (*tenant, *object, error) {
	t, err := s.adminTenant(tenantID)
	if err != nil {
		return nil, nil, err
	}
	u := t.users[key]
	if u == nil {
		u = t.upns[strings.ToLower(key)]
	}
	if u == nil {
		return nil, nil, fmt.Errorf("graphsim: no user %s in tenant %s", key, tenantID)
	}
	return t, u, nil
}

func (s *Sim) adminGroup(tenantID, id string) (*tenant, *object, error) {
	t, err := s.adminTenant(tenantID)
	if err != nil {
		return nil, nil, err
	}
	g := t.groups[id]
	if g == nil {
		return nil, nil, fmt.Errorf("graphsim: no group %s in tenant %s", id, tenantID)
	}
	return t, g, nil
}

// tenantAdminRoutes serves the edits above on the admin API.
func (s *Sim) tenantAdminRoutes(m *http.ServeMux) {
	m.HandleFunc("PATCH /_sim/tenants/{id}/users/{user}", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		if decodeAdmin(w, r, &in) {
			adminResult(w, http.StatusNoContent, nil, s.AdminUpdateUser(r.PathValue("id"), r.PathValue("user"), in))
		}
	})
	m.HandleFunc("DELETE /_sim/tenants/{id}/users/{user}", func(w http.ResponseWriter, r *http.Request) {
		adminResult(w, http.StatusNoContent, nil, s.AdminDeleteUser(r.PathValue("id"), r.PathValue("user")))
	})
	m.HandleFunc("PATCH /_sim/tenants/{id}/groups/{group}", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		if decodeAdmin(w, r, &in) {
			adminResult(w, http.StatusNoContent, nil, s.AdminUpdateGroup(r.PathValue("id"), r.PathValue("group"), in))
		}
	})
	m.HandleFunc("DELETE /_sim/tenants/{id}/groups/{group}", func(w http.ResponseWriter, r *http.Request) {
		adminResult(w, http.StatusNoContent, nil, s.AdminDeleteGroup(r.PathValue("id"), r.PathValue("group")))
	})
	m.HandleFunc("POST /_sim/tenants/{id}/groups/{group}/members", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ID string `json:"id"`
		}
		if decodeAdmin(w, r, &in) {
			adminResult(w, http.StatusNoContent, nil, s.AdminAddMember(r.PathValue("id"), r.PathValue("group"), in.ID))
		}
	})
	m.HandleFunc("DELETE /_sim/tenants/{id}/groups/{group}/members/{member}", func(w http.ResponseWriter, r *http.Request) {
		adminResult(w, http.StatusNoContent, nil, s.AdminRemoveMember(r.PathValue("id"), r.PathValue("group"), r.PathValue("member")))
	})
}

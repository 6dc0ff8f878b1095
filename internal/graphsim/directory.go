package graphsim

import (
	"net/http"
	"strings"
	"time"
)

func (c *call) domainJSON(d *domain) map[string]any {
	services := []string{}
	if d.verified {
		services = []string{"Email", "OfficeCommunicationsOnlineService"}
	}
	return map[string]any{
		"id": d.name, "authenticationType": "Managed", "availabilityStatus": nil, "isAdminManaged": true,
		"isDefault": d.isDefault, "isInitial": d.initial, "isRoot": true, "isVerified": d.verified,
		"manufacturer": nil, "model": nil, "passwordNotificationWindowInDays": 14,
		"passwordValidityPeriodInDays": d.pwdDays, "supportedServices": services, "state": nil,
	}
}

func (c *call) listDomains() (*reply, *graphError) {
	if err := rejectOptions(c.query, "$select"); err != nil {
		return nil, err
	}
	values := make([]map[string]any, 0, len(c.t.domains))
	for _, d := range c.t.domains {
		values = append(values, c.domainJSON(d))
	}
	return jsonReply(http.StatusOK, map[string]any{"@odata.context": c.base + "/$metadata#domains", "value": values}), nil
}

func (c *call) getDomain() (*reply, *graphError) {
	d := c.t.findDomain(c.segs[1])
	if d == nil {
		return nil, notFound(c.segs[1])
	}
	body := c.domainJSON(d)
	body["@odata.context"] = c.base + "/$metadata#domains/$entity"
	return jsonReply(http.StatusOK, body), nil
}

func (c *call) organizationJSON() map[string]any {
	var verified []map[string]any
	for _, d := range c.t.domains {
		if !d.verified {
			continue
		}
		caps := "Email, OfficeCommunicationsOnlineService"
		verified = append(verified, map[string]any{"capabilities": caps, "isDefault": d.isDefault,
			"isInitial": d.initial, "name": d.name, "type": "Managed"})
	}
	return map[string]any{
		"id": c.t.id, "displayName": c.t.displayName, "tenantType": "AAD", "countryLetterCode": "US",
		"createdDateTime": c.t.created.UTC().Format(time.RFC3339), "businessPhones": []string{},
		"city": nil, "country": nil, "postalCode": nil, "state": nil, "street": nil,
		"preferredLanguage": "en", "onPremisesSyncEnabled": nil, "onPremisesLastSyncDateTime": nil,
		"technicalNotificationMails": []string{}, "verifiedDomains": verified,
	}
}

func (c *call) listOrganization() (*reply, *graphError) {
	if err := rejectOptions(c.query, "$select"); err != nil {
		return nil, err
	}
	return jsonReply(http.StatusOK, map[string]any{"@odata.context": c.base + "/$metadata#organization",
		"value": []map[string]any{c.organizationJSON()}}), nil
}

func (c *call) getOrganization() (*reply, *graphError) {
	if !strings.EqualFold(c.segs[1], c.t.id) {
		return nil, notFound(c.segs[1])
	}
	body := c.organizationJSON()
	body["@odata.context"] = c.base + "/$metadata#organization/$entity"
	return jsonReply(http.StatusOK, body), nil
}

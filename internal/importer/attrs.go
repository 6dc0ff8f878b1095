package importer

import (
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/predicate"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
)

// userSetter writes one directory attribute (mapping.DirectoryAttributes) on
// a user being created, with the field's own validator.
type userSetter struct {
	valid func(string) error
	set   func(*ent.UserCreate, string) *ent.UserCreate
}

// userSetters are the attributes an import may fill. "email" is not one: M3
// decides the email.
var userSetters = map[string]userSetter{
	"firstName":      {func(s string) error { return user.FirstNameValidator(s) }, (*ent.UserCreate).SetFirstName},
	"lastName":       {func(s string) error { return user.LastNameValidator(s) }, (*ent.UserCreate).SetLastName},
	"displayName":    {func(s string) error { return user.DisplayNameValidator(s) }, (*ent.UserCreate).SetDisplayName},
	"jobTitle":       {func(s string) error { return user.JobTitleValidator(s) }, (*ent.UserCreate).SetJobTitle},
	"department":     {func(s string) error { return user.DepartmentValidator(s) }, (*ent.UserCreate).SetDepartment},
	"companyName":    {func(s string) error { return user.CompanyNameValidator(s) }, (*ent.UserCreate).SetCompanyName},
	"employeeId":     {func(s string) error { return user.EmployeeIDValidator(s) }, (*ent.UserCreate).SetEmployeeID},
	"employeeType":   {func(s string) error { return user.EmployeeTypeValidator(s) }, (*ent.UserCreate).SetEmployeeType},
	"costCenter":     {func(s string) error { return user.CostCenterValidator(s) }, (*ent.UserCreate).SetCostCenter},
	"businessPhone":  {func(s string) error { return user.BusinessPhoneValidator(s) }, (*ent.UserCreate).SetBusinessPhone},
	"mobilePhone":    {func(s string) error { return user.MobilePhoneValidator(s) }, (*ent.UserCreate).SetMobilePhone},
	"officeLocation": {func(s string) error { return user.OfficeLocationValidator(s) }, (*ent.UserCreate).SetOfficeLocation},
	"streetAddress":  {func(s string) error { return user.StreetAddressValidator(s) }, (*ent.UserCreate).SetStreetAddress},
	"city":           {func(s string) error { return user.CityValidator(s) }, (*ent.UserCreate).SetCity},
	"state":          {func(s string) error { return user.AddressStateValidator(s) }, (*ent.UserCreate).SetAddressState},
	"postalCode":     {func(s string) error { return user.PostalCodeValidator(s) }, (*ent.UserCreate).SetPostalCode},
	"country":        {func(s string) error { return user.CountryValidator(s) }, (*ent.UserCreate).SetCountry},
	"usageLocation":  {func(s string) error { return user.UsageLocationValidator(s) }, (*ent.UserCreate).SetUsageLocation},
	"alternateEmail": {func(s string) error { return user.AlternateEmailValidator(s) }, (*ent.UserCreate).SetAlternateEmail},
}

// validAttribute checks a value against the directory's rule for attr.
func validAttribute(attr, v string) error {
	s, ok := userSetters[attr]
	if !ok {
		return fmt.Errorf("the directory has no attribute %q to import into", attr)
	}
	return s.valid(v)
}

func jobitemJob(id pulid.ID) predicate.JobItem { return jobitem.JobID(id) }

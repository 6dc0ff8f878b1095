package msgraph

import "strings"

// Literal quotes s as an OData string literal for $filter: single quotes are
// doubled, so a UPN such as o'brien@example.com cannot end the literal early
// and inject filter syntax. URL encoding happens later, in encodeQuery.
func Literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Eq builds "prop eq 'value'" with value escaped.
func Eq(prop, value string) string {
	return prop + " eq " + Literal(value)
}

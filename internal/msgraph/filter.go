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

// MaxInValues is how many alternatives Graph accepts in one $filter (an `in`
// list counts each value; more answers 400 "Too many child clauses").
const MaxInValues = 15

// In builds "prop in ('v1','v2',…)" with each value escaped. Callers keep
// len(values) within MaxInValues.
func In(prop string, values []string) string {
	var b strings.Builder
	b.WriteString(prop + " in (")
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Literal(v))
	}
	b.WriteByte(')')
	return b.String()
}

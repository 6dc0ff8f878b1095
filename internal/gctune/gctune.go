// Package gctune sets the garbage collector of a dirsync process.
//
// Serving a page of users allocates tens of thousands of small objects
// (gqlgen builds a field context and a marshaller per field), nearly all dead
// by the end of the request, while the live heap stays small. With Go's
// default GOGC of 100 the collector then runs every few requests and took a
// quarter of the CPU of a users-with-groups page (issue 12,
// docs/benchmarks.md). A larger GOGC collects less often at the price of a
// larger heap between collections: up to 1 + DefaultPercent/100 times the live
// heap. Operators cap that with GOMEMLIMIT (docs/operators.md).
package gctune

import (
	"runtime/debug"
	"runtime/metrics"
)

// DefaultPercent is the GOGC a dirsync process runs with when the operator set
// none: 5× the live heap at most between collections. Measured against 100,
// 200 and 800 in the read-path benchmark, it took most of the gain.
const DefaultPercent = 400

// Apply sets GOGC to DefaultPercent unless getenv("GOGC") is set, which the
// Go runtime has applied already. It returns the GOGC in effect (-1: off).
func Apply(getenv func(string) string) int {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultPercent)
	}
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

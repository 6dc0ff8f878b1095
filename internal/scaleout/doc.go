// Package scaleout holds the scale-out proof: the real dirsync binary run as
// two API processes and two worker processes on one PostgreSQL database and
// one Redis database, driven over GraphQL against a Microsoft Graph emulator,
// checking what must hold when work is spread over processes (no duplicate
// remote object, no lost job, one shared throttle budget, periodic work once
// per period, every job visible on either API). docs/scaling.md explains the
// design it exercises. It has no non-test code.
package scaleout

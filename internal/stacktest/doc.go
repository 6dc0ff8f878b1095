// Package stacktest holds end-to-end tests of the whole running service: the
// HTTP server (server.Handler with its middleware) and the worker with its
// outbox relay, both built by internal/app from one config as `dirsync dev`
// builds them, on a real PostgreSQL database, a real Redis database and
// Microsoft Graph emulator tenants. It has no non-test code.
package stacktest

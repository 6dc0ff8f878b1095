// Package simtest holds the integration tests of internal/msgraph against the
// Microsoft Graph emulator (internal/graphsim) and, when credentials are set,
// against a real tenant. They live apart from the client's unit tests so those
// keep building while the emulator is being changed.
package simtest

package app

import (
	"github.com/dirsync/dirsync/internal/password"
	"github.com/dirsync/dirsync/internal/passwords"
	"github.com/dirsync/dirsync/internal/worker"
)

// Argon2Params are the configured argon2id parameters, defaults filled in.
func (a *App) Argon2Params() password.Params {
	p := password.DefaultParams
	if a.Cfg.Argon2MemoryKiB > 0 {
		p.MemoryKiB = uint32(a.Cfg.Argon2MemoryKiB)
	}
	if a.Cfg.Argon2Iterations > 0 {
		p.Iterations = uint32(a.Cfg.Argon2Iterations)
	}
	if a.Cfg.Argon2Parallelism > 0 {
		p.Parallelism = uint8(min(a.Cfg.Argon2Parallelism, 255))
	}
	return p
}

// wirePasswords builds the password service (API side) on the app's
// connections.
func (a *App) wirePasswords() error {
	h, err := password.NewHasher(a.Argon2Params(), 0)
	if err != nil {
		return err
	}
	a.Passwords, err = passwords.New(passwords.Config{Ent: a.Ent, Keyring: a.Keyring, Hasher: h, Redis: a.Redis, Logger: a.Log})
	return err
}

// passwordTasks adds the password push handler and the X5/X6 sweep to a
// worker config; without a secret key there is nothing to open pushes with.
func (a *App) passwordTasks(cfg *worker.Config) error {
	if a.Keyring == nil || a.Tenants == nil {
		return nil
	}
	p, err := passwords.NewPusher(passwords.PusherConfig{Ent: a.Ent, Tenants: a.Tenants, Keyring: a.Keyring,
		Publisher: a.Publisher, Logger: a.Log})
	if err != nil {
		return err
	}
	cfg.Push = p
	cfg.PasswordSweep = a.Passwords.Sweep
	return nil
}

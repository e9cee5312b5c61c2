package daemon

import (
	"errors"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/store"
)

// Preflight makes every check the daemon makes before it starts, on a
// loaded configuration, and changes nothing: no source is contacted, no
// webhook sent, the store neither created nor locked. `vmreconcile config
// validate` runs it; so does `vmreconcile daemon` before it opens the store.
// Every error is a *config.Error naming the key.
func Preflight(cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(cfg.Swarms) == 0 && len(cfg.Kubernetes) == 0 {
		return &config.Error{Key: "swarms", Msg: "no cluster to watch: the config has no swarms and no kubernetes (fix: a swarms: entry with the managers' hosts or a docker context, or a kubernetes: entry; vcenters may be empty)"}
	}
	logins, err := guest.NewLogins(cfg.Guest, "guest.login")
	if err != nil {
		return asConfigError("guest.login", err)
	}
	if cfg.Policy.Remediate != "off" {
		// The daemon's own policy checks; NewSources contacts nothing.
		if _, err := NewRunner(cfg, audit.NewSources(cfg), logins, nil); err != nil {
			return asConfigError("policy", err)
		}
	}
	if err := store.CheckPath(cfg.Store.Path); err != nil {
		return &config.Error{Key: "store.path", Msg: err.Error() + " (fix: a file path this user can create and write, e.g. /var/lib/vmreconcile/state.db; the systemd unit's StateDirectory)"}
	}
	return nil
}

func asConfigError(key string, err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return err
	}
	return &config.Error{Key: key, Msg: err.Error()}
}

package config

import (
	"sort"

	"github.com/spf13/viper"
)

// Keys lists every configuration key (for tests that check a key is known).
func Keys() []string {
	v := viper.New()
	setDefaults(v, Default())
	keys := v.AllKeys()
	keys = append(keys, "vcenters", "swarms", "kubernetes", "guest.logins", "alerts.webhooks", "alerts.alertmanager", "alerts.slack")
	sort.Strings(keys)
	return keys
}

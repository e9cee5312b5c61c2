package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// secretValues returns the scalar values of the password, login and secret
// keys of a YAML document, at any depth.
func secretValues(doc []byte) []string {
	v := viper.New()
	v.SetConfigType("yaml")
	if v.ReadConfig(bytes.NewReader(doc)) != nil {
		return nil
	}
	var out []string
	var walk func(x any, key string)
	walk = func(x any, key string) {
		switch x := x.(type) {
		case map[string]any:
			for k, val := range x {
				walk(val, strings.ToLower(k))
			}
		case []any:
			for _, val := range x {
				walk(val, key)
			}
		case nil:
		default:
			if key == "password" || key == "login" || key == "secret" {
				out = append(out, fmt.Sprint(x))
			}
		}
	}
	walk(v.AllSettings(), "")
	return out
}

// FuzzLoad: any file content gives a valid configuration or one *Error on
// one line that names the file and echoes no secret; a loaded configuration
// validates again and loads the same a second time.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../contrib/vmreconcile.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"vcenters:\n  - url: https://vc1.example.com/sdk\n    username: admin\n    password: hunter2secret\nswarms:\n  - hosts: ['tcp://mgr-1:2376']\n",
		"guest:\n  login: root:hunter2secret\n  logins:\n    - pattern: '/DC0/vm/*'\n      login: admin:hunter2other\n",
		"alerts:\n  webhooks:\n    - url: 'https://hooks.example.com/x?token=hunter2token'\n      secret: hunter2hmac\n",
		"vcenters:\n  - url: 'https://admin:hunter2secret@vc1.example.com/sdk'\n",
		"schedules:\n  audit: 'CRON_TZ=Europe/Berlin */5 * * * *'\n  prune: '@every 2h'\n",
		"observe:\n  lookback: 15m\n  window: -1s\n",
		"policy:\n  remediate: on\n  max_percent: 101\n  exclude: ['[abc']\n",
		"vcenters: [\n",
		"listen: 9477\nlog:\n  format: xml\n",
		"vcenters:\n  - url: vc1\n    password: [hunter2secret]\n",
		"\"a\\nb\": 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p := filepath.Join(t.TempDir(), "vmreconcile.yaml")
		if err := os.WriteFile(p, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			var ce *Error
			msg := err.Error()
			switch {
			case !errors.As(err, &ce):
				t.Fatalf("not a *config.Error: %T %q", err, msg)
			case strings.ContainsAny(msg, "\r\n"):
				t.Fatalf("error is not one line: %q", msg)
			case !strings.HasPrefix(msg, p+": "):
				t.Fatalf("error does not name the file: %q", msg)
			}
			for _, s := range secretValues(doc) {
				// A secret that occurs once in the file can only be in the
				// error by coming from its own key.
				if len(s) >= 6 && bytes.Count(doc, []byte(s)) == 1 && strings.Contains(msg, s) {
					t.Fatalf("error echoes the secret %q: %q", s, msg)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted what Validate rejects: %v", err)
		}
		again, err := Load(p)
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("second load differs: %v\n%+v\n%+v", err, again, cfg)
		}
	})
}

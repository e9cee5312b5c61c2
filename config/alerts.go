package config

import (
	"fmt"
	"net/url"
	"time"
)

// Limits of the alert settings.
const (
	maxAlertRetries   = 20
	minResendInterval = time.Second
)

// validateAlerts checks the alert sinks and the resolution policy.
func (c *Config) validateAlerts() error {
	for i, wh := range c.Alerts.Webhooks {
		key := fmt.Sprintf("alerts.webhooks[%d]", i)
		if !isHTTPURL(wh.URL) {
			return &Error{Key: key + ".url", Msg: fmt.Sprintf("%q is not an http(s) URL (fix: e.g. https://alerts.example.com/hook)", redactURL(wh.URL))}
		}
		if err := validateDelivery(key, wh.Retries, wh.Timeout); err != nil {
			return err
		}
	}
	for i, am := range c.Alerts.Alertmanager {
		if err := validateAlertmanager(fmt.Sprintf("alerts.alertmanager[%d]", i), am); err != nil {
			return err
		}
	}
	for i, sl := range c.Alerts.Slack {
		key := fmt.Sprintf("alerts.slack[%d]", i)
		if sl.URL == "" {
			return &Error{Key: key + ".url", Msg: "missing (fix: set url_file to a file holding the incoming webhook URL, e.g. https://hooks.slack.com/services/...)"}
		}
		if !isHTTPURL(sl.URL.Reveal()) {
			// The whole URL is a credential: never echo it.
			return &Error{Key: key + ".url", Msg: "not an http(s) URL (value not shown: it is a credential) (fix: the incoming webhook URL, e.g. https://hooks.slack.com/services/...)"}
		}
		if err := validateDelivery(key, sl.Retries, sl.Timeout); err != nil {
			return err
		}
	}
	if c.Findings.ResolveRuns < 2 {
		return &Error{Key: "findings.resolve_runs", Msg: fmt.Sprintf("%d is below 2: one run without a finding is not evidence that it is fixed (fix: 3, the default)", c.Findings.ResolveRuns)}
	}
	if c.Findings.ResolveAfter < 0 {
		return &Error{Key: "findings.resolve_after", Msg: "must not be negative (fix: e.g. 10m, the default)"}
	}
	return nil
}

func validateAlertmanager(key string, am Alertmanager) error {
	u, err := url.Parse(am.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Key: key + ".url", Msg: fmt.Sprintf("%q is not an http(s) URL (fix: the Alertmanager's base URL, e.g. http://alertmanager:9093)", redactURL(am.URL))}
	}
	if u.User != nil || u.RawQuery != "" {
		return &Error{Key: key + ".url", Msg: fmt.Sprintf("%q carries credentials or a query (fix: give the base URL only, and username with password_file, or bearer_token_file)", redactURL(am.URL))}
	}
	if am.Username != "" && am.Password == "" {
		return &Error{Key: key + ".password_file", Msg: "username is set but no password (fix: set password_file)"}
	}
	if am.Password != "" && am.Username == "" {
		return &Error{Key: key + ".username", Msg: "a password is set but no username (fix: set username)"}
	}
	if am.Password != "" && am.BearerToken != "" {
		return &Error{Key: key, Msg: "both basic auth and a bearer token are set (fix: keep one)"}
	}
	if am.ResendInterval != 0 && am.ResendInterval < minResendInterval {
		return &Error{Key: key + ".resend_interval", Msg: fmt.Sprintf("%s is below %s (fix: e.g. 1m, the default)", am.ResendInterval, minResendInterval)}
	}
	return validateDelivery(key, am.Retries, am.Timeout)
}

func validateDelivery(key string, retries int, timeout time.Duration) error {
	if retries < 0 || retries > maxAlertRetries {
		return &Error{Key: key + ".retries", Msg: fmt.Sprintf("%d is not within 0..%d (fix: e.g. 3)", retries, maxAlertRetries)}
	}
	if timeout < 0 {
		return &Error{Key: key + ".timeout", Msg: "must not be negative (fix: e.g. 10s; 0 is the default 10s)"}
	}
	return nil
}

func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

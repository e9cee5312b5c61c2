package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// Exit codes (README, "Exit codes").
const (
	ExitOK         = 0 // clean: no finding at or above -fail-on
	ExitRuntime    = 1 // a source failed at run time (unreachable, timeout, API error)
	ExitUsage      = 2 // bad flags, config, credentials or names: fix the input
	ExitFindings   = 3 // findings at or above -fail-on (audit), or unsafe (preclone)
	ExitUnverified = 4 // preclone: could not verify
)

// usageError is bad input: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// findingsError carries exit 3 after the report was printed.
type findingsError struct{ code int }

func (e *findingsError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var (
		u  *usageError
		ce *config.Error
		f  *findingsError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &f):
		return f.code
	case errors.As(err, &u), errors.As(err, &ce):
		return ExitUsage
	}
	return ExitRuntime
}

// secrets holds every secret value this process has seen (passwords, guest
// logins); redact removes them from anything printed.
var secrets struct {
	sync.Mutex
	values []string
}

func addSecret(s string) {
	if len(s) < 3 { // too short to redact without mangling normal text
		return
	}
	secrets.Lock()
	secrets.values = append(secrets.values, s, url.QueryEscape(s), url.PathEscape(s))
	secrets.Unlock()
}

func redact(s string) string {
	secrets.Lock()
	defer secrets.Unlock()
	for _, v := range secrets.values {
		if v != "" {
			s = strings.ReplaceAll(s, v, "<redacted>")
		}
	}
	return s
}

// vcenterError turns a login or connection failure into one line that says
// what is wrong and what to do.
func vcenterError(host string, err error) error {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("vcenter %s: timed out: %s (fix: check the address and the network; -timeout or the config's timeout sets the deadline)", host, oneLine(err.Error()))
	case errors.Is(err, context.Canceled):
		return err
	case fault.Is(err, &types.InvalidLogin{}), strings.Contains(err.Error(), "incorrect user name or password"):
		return usagef("vcenter %s: login failed: incorrect user name or password (fix: check -u, GOVC_USERNAME and GOVC_PASSWORD)", host)
	case errors.As(err, &unknown), errors.As(err, &hostErr), strings.Contains(err.Error(), "certificate"), strings.Contains(err.Error(), "thumbprint"):
		return usagef("vcenter %s: TLS certificate not trusted (fix: -tls-ca-certs FILE, -tls-known-hosts FILE, or -k to skip verification)", host)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("vcenter %s: host name not found (fix: check -u / GOVC_URL)", host)
	case errors.As(err, &opErr):
		return fmt.Errorf("vcenter %s: unreachable: %s (fix: check -u / GOVC_URL and that vCenter is up)", host, opErr.Err)
	}
	return fmt.Errorf("vcenter %s: %s", host, oneLine(err.Error()))
}

// configFix rewrites the fix of a vcenterError for vCenter i of the config
// file: its fixes name the command line (-u, GOVC_PASSWORD, -k), which is
// not where the failing value came from.
func configFix(key string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	msg := strings.NewReplacer(
		"check -u, GOVC_USERNAME and GOVC_PASSWORD", "check "+key+".username and "+key+".password or password_file",
		"-tls-ca-certs FILE, -tls-known-hosts FILE, or -k to skip verification", key+".tls_ca_certs, "+key+".tls_known_hosts, or "+key+".insecure: true",
		"check -u / GOVC_URL", "check "+key+".url",
	).Replace(err.Error())
	if exitCode(err) == ExitUsage {
		return usagef("%s", msg)
	}
	return errors.New(msg)
}

// sourceError turns a pipeline error into one line naming the source and
// the fix: the flags' names when the source came from flags, the config
// file's keys otherwise.
func sourceError(err error, fromFlags bool) error {
	var (
		se *collect.SourceError
		le *audit.LoginError
		de *audit.DatacenterError
		ce *audit.ClientError
	)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &de):
		if fromFlags {
			return usagef("vcenter %s: %s (fix: -dc or GOVC_DATACENTER naming an existing datacenter)", le0(err), de.Error())
		}
		return usagef("vcenter %s: %s", le0(err), de.Error())
	case errors.As(err, &le):
		if fromFlags {
			return vcenterError(le.Host, le.Err)
		}
		return configFix(le.Key, vcenterError(le.Host, le.Err))
	case errors.As(err, &ce):
		return usagef("%s (fix: DOCKER_CERT_PATH names a directory holding ca.pem, cert.pem and key.pem, such as an unzipped client bundle; DOCKER_TLS_VERIFY set verifies the manager with ca.pem)", oneLine(ce.Error()))
	case errors.As(err, &se):
		if swarm.IsNotManager(se.Err) {
			// A worker (or a non-swarm engine) as -H, DOCKER_HOST or
			// swarms[].hosts is bad input, not a runtime failure: exit 2.
			return usagef("%s: %s (or DOCKER_HOST, or swarms[].hosts in the config)", se.Source, oneLine(se.Err.Error()))
		}
		if errors.Is(se.Err, context.DeadlineExceeded) || strings.Contains(se.Err.Error(), "Client.Timeout") || strings.Contains(se.Err.Error(), "timeout awaiting response headers") {
			return fmt.Errorf("%s: timed out: %s (fix: check the address and the network; -timeout or the config's timeout sets the deadline)", se.Source, oneLine(se.Err.Error()))
		}
		return fmt.Errorf("%s: %s", se.Source, oneLine(se.Err.Error()))
	}
	return err
}

func le0(err error) string {
	var le *audit.LoginError
	if errors.As(err, &le) {
		return le.Host
	}
	return "?"
}

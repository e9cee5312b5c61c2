// Package guest reads a VM's identity from inside the guest through vSphere
// guest operations (VMware Tools; no SSH, no network path to the VM needed)
// and runs remediation scripts the same way.
//
// Everything goes through the GuestOperationsManager of the vCenter (or ESX)
// the client is logged in to: StartProgramInGuest runs /bin/sh -c SCRIPT with
// its output redirected to files in a guest temporary directory,
// ListProcessesInGuest waits for it to exit and InitiateFileTransferFromGuest
// plus an HTTPS GET fetch the output. Guest credentials are never logged or
// put into errors.
package guest

import (
	"errors"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

// ParseGuestLogin parses "user:password", the format of govc's
// GOVC_GUEST_LOGIN. The password may contain ':'. Errors never contain the
// password.
func ParseGuestLogin(s string) (*types.NamePasswordAuthentication, error) {
	user, password, ok := strings.Cut(s, ":")
	switch {
	case strings.TrimSpace(s) == "":
		return nil, errors.New("guest login is empty: want user:password")
	case !ok:
		// s is then a bare user name (or a password someone forgot the user
		// for): do not echo it.
		return nil, errors.New("guest login has no ':': want user:password")
	case user == "":
		return nil, errors.New("guest login has an empty user name: want user:password")
	case password == "":
		return nil, errors.New("guest login for user " + quoteUser(user) + " has an empty password: want user:password")
	}
	return &types.NamePasswordAuthentication{Username: user, Password: password}, nil
}

func quoteUser(u string) string {
	if len(u) > 64 {
		u = u[:64] + "..."
	}
	return "\"" + sanitizeLine(u) + "\""
}

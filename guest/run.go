package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
)

// MaxOutput caps what Run downloads of each of stdout and stderr; the rest
// is dropped.
const MaxOutput = 1 << 20

// Run runs script with /bin/sh in the guest of vm and returns its exit code
// and output. The script is passed as one argument (/bin/sh -c 'SCRIPT', with
// the script single-quoted), so quotes, $ and newlines in it reach the guest
// shell unchanged. Its stdin is /dev/null; stdout and stderr go to files in a
// temporary directory in the guest, fetched after the program exits (each
// capped at MaxOutput) and deleted.
//
// err is non-nil when the script could not be run to completion (invalid
// guest login, VM off, tools not running, ctx expired...); a script that
// runs and fails is exitCode != 0 with err == nil. Describe(err) gives a
// short one-line reason. Run works with Linux guests (VMware Tools or
// open-vm-tools), not Windows.
func Run(ctx context.Context, c *vim25.Client, vm mo.Reference, auth types.BaseGuestAuthentication, script string) (exitCode int, stdout, stderr []byte, err error) {
	return run(ctx, c, vm.Reference(), auth, script, MaxOutput, MaxOutput)
}

func run(ctx context.Context, c *vim25.Client, vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, script string, maxOut, maxErr int64) (int, []byte, []byte, error) {
	if auth == nil {
		return -1, nil, nil, errors.New("no guest credentials")
	}
	om := guest.NewOperationsManager(c, vm)
	pm, err := om.ProcessManager(ctx)
	if err != nil {
		return -1, nil, nil, err
	}
	fm, err := om.FileManager(ctx)
	if err != nil {
		return -1, nil, nil, err
	}

	// A directory (not two files) so that one call cleans everything up.
	dir, err := fm.CreateTemporaryDirectory(ctx, auth, "vmreconcile-", "", "")
	if err != nil {
		return -1, nil, nil, err
	}
	if dir == "" || !strings.HasPrefix(dir, "/") {
		// vcsim answers "" for VMs without a container backing.
		return -1, nil, nil, errors.New("guest returned no temporary directory (guest operations unavailable?)")
	}
	defer func() {
		// Clean up even when ctx is done; bounded so a hung guest cannot block.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = fm.DeleteDirectory(cctx, auth, dir, true)
	}()
	outPath, errPath := dir+"/stdout", dir+"/stderr"

	// The redirections live inside the quoted script: VMware Tools runs
	// "ProgramPath Arguments" through the guest's /bin/sh -c, and vcsim runs
	// "docker exec ID ProgramPath Arguments" through a shell on the vcsim
	// host, so redirections outside the quotes would apply on the vcsim host.
	// Either way exactly one shell parses Arguments, so one level of single
	// quoting delivers the script verbatim.
	wrapped := "exec </dev/null >" + shellQuote(outPath) + " 2>" + shellQuote(errPath) + "\n" + script
	spec := &types.GuestProgramSpec{
		ProgramPath: "/bin/sh",
		Arguments:   "-c " + shellQuote(wrapped),
	}
	pid, err := pm.StartProgram(ctx, auth, spec)
	if err != nil {
		return -1, nil, nil, err
	}

	code, err := wait(ctx, pm, auth, pid)
	if err != nil {
		return -1, nil, nil, err
	}
	stdout, err := download(ctx, c, fm, auth, outPath, maxOut)
	if err != nil {
		return code, nil, nil, fmt.Errorf("fetching stdout: %w", err)
	}
	stderr, err := download(ctx, c, fm, auth, errPath, maxErr)
	if err != nil {
		return code, stdout, nil, fmt.Errorf("fetching stderr: %w", err)
	}
	return code, stdout, stderr, nil
}

func wait(ctx context.Context, pm *guest.ProcessManager, auth types.BaseGuestAuthentication, pid int64) (int, error) {
	delay := 50 * time.Millisecond
	for {
		procs, err := pm.ListProcesses(ctx, auth, []int64{pid})
		if err != nil {
			return -1, err
		}
		if len(procs) == 0 {
			return -1, fmt.Errorf("guest process %d vanished before it was seen to exit", pid)
		}
		if procs[0].EndTime != nil {
			return int(procs[0].ExitCode), nil
		}
		select {
		case <-ctx.Done():
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = pm.TerminateProcess(tctx, auth, pid)
			cancel()
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}

func download(ctx context.Context, c *vim25.Client, fm *guest.FileManager, auth types.BaseGuestAuthentication, path string, max int64) ([]byte, error) {
	info, err := fm.InitiateFileTransferFromGuest(ctx, auth, path)
	if err != nil {
		return nil, err
	}
	u, err := fm.TransferURL(ctx, info.Url)
	if err != nil {
		return nil, err
	}
	p := soap.DefaultDownload
	p.Close = true // no keep-alive to the ESX host
	r, _, err := c.Download(ctx, u, &p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, max))
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20)) // let the transfer finish cleanly
	return b, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Describe turns an error of Run or of guest operations into a short
// one-line reason suitable for GuestIdentity.Error and logs. It knows the
// vSphere guest faults (InvalidGuestLogin, GuestOperationsUnavailable,
// InvalidPowerState...) and strips URLs (transfer URLs carry a session
// token) from anything else.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	var reason string
	fault.In(err, func(f types.BaseMethodFault, _ string, _ []types.LocalizableMessage) bool {
		reason = describeFault(f)
		return reason != ""
	})
	if reason == "" {
		if f := vimFault(err); f != nil {
			reason = describeFault(f)
		}
	}
	if reason != "" {
		return reason
	}
	return sanitizeLine(err.Error())
}

func vimFault(err error) types.BaseMethodFault {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if soap.IsSoapFault(e) {
			if f, ok := soap.ToSoapFault(e).VimFault().(types.BaseMethodFault); ok {
				return f
			}
		}
		if soap.IsVimFault(e) {
			return soap.ToVimFault(e)
		}
	}
	return nil
}

func describeFault(f types.BaseMethodFault) string {
	switch f := f.(type) {
	case *types.InvalidGuestLogin:
		return "invalid guest login: user name or password rejected by the guest"
	case *types.GuestAuthenticationChallenge:
		return "invalid guest login: guest asked for an authentication challenge"
	case *types.GuestPermissionDenied:
		return "guest permission denied for the guest user"
	case *types.GuestOperationsUnavailable:
		return "guest operations unavailable (VMware Tools not running or not ready)"
	case *types.ToolsUnavailable:
		return "VMware Tools not running"
	case *types.InvalidPowerState:
		if f.ExistingState != "" {
			return "VM is " + humanPower(string(f.ExistingState))
		}
		return "VM is not powered on"
	case *types.InvalidState:
		return "VM is in an invalid state for guest operations"
	case *types.GuestProcessNotFound:
		return "guest process not found"
	case *types.FileNotFound:
		return "guest file not found"
	case *types.GuestComponentsOutOfDate:
		return "VMware Tools too old for guest operations"
	case *types.OperationDisabledByGuest:
		return "guest operations disabled in the guest"
	case *types.OperationNotSupportedByGuest:
		return "operation not supported by the guest"
	case *types.ManagedObjectNotFound:
		return "VM not found"
	case *types.NoPermission:
		return "vSphere user lacks the guest operations privilege (" + sanitizeLine(f.PrivilegeId) + ")"
	case *types.NotAuthenticated:
		return "vSphere session not authenticated"
	case *types.GuestOperationsFault:
		return "guest operation failed"
	}
	return ""
}

func humanPower(s string) string {
	switch s {
	case string(types.VirtualMachinePowerStatePoweredOff):
		return "powered off"
	case string(types.VirtualMachinePowerStateSuspended):
		return "suspended"
	case string(types.VirtualMachinePowerStatePoweredOn):
		return "powered on"
	}
	return sanitizeLine(s)
}

var urlRx = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// sanitizeLine makes s one short printable line without URL queries.
func sanitizeLine(s string) string {
	s = urlRx.ReplaceAllStringFunc(s, func(raw string) string {
		u, err := url.Parse(strings.TrimRight(raw, ".,;:)"))
		if err != nil {
			return "<url>"
		}
		u.RawQuery, u.User, u.Fragment = "", nil, ""
		return u.String()
	})
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteRune(r)
	}
	// What is left that a terminal could act on (C1 controls, bidi and other
	// format characters) becomes a visible escape; the cut falls between
	// characters.
	out := textsafe.Term(strings.TrimSpace(b.String()))
	if len(out) > 200 {
		i := 200
		for i > 0 && !utf8.RuneStart(out[i]) {
			i--
		}
		out = out[:i] + "..."
	}
	return out
}

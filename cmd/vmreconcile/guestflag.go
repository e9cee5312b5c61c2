package main

import (
	"context"
	"flag"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// guestFlag is the guest-operations side of a command: the login (govc's
// GOVC_GUEST_LOGIN), how many VMs at once and how long per VM.
type guestFlag struct {
	login       string
	concurrency int
	timeout     time.Duration
	set         map[string]bool
	fs          *flag.FlagSet

	// resolved by Process
	def      *types.NamePasswordAuthentication
	override bool // def came from -l or GOVC_GUEST_LOGIN: it wins over patterns
	byPat    []patternLogin
}

type patternLogin struct {
	pattern string
	auth    *types.NamePasswordAuthentication
}

func (f *guestFlag) Register(ctx context.Context, fs *flag.FlagSet) {
	fs.StringVar(&f.login, "l", "", "Guest login user:password [GOVC_GUEST_LOGIN]")
	fs.IntVar(&f.concurrency, "guest-concurrency", 4, "Guest operations on at most this many VMs at once")
	fs.DurationVar(&f.timeout, "guest-timeout", 2*time.Minute, "Give up on one VM's guest operations after this long")
	f.fs = fs
}

// Process resolves the logins — -l, else GOVC_GUEST_LOGIN (either overrides
// the config file), else the config's guest.logins patterns and guest.login —
// and registers every password as a secret.
func (f *guestFlag) Process(cfg config.Config) error {
	f.set = map[string]bool{}
	if f.fs != nil { // nil: built from the config alone (the daemon)
		f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	} else {
		f.concurrency, f.timeout = 4, 2*time.Minute
	}
	if !f.set["guest-concurrency"] && cfg.Guest.Concurrency > 0 {
		f.concurrency = cfg.Guest.Concurrency
	}
	if !f.set["guest-timeout"] && cfg.Guest.Timeout > 0 {
		f.timeout = cfg.Guest.Timeout
	}
	if f.concurrency < 1 || f.timeout <= 0 {
		return usagef("-guest-concurrency must be >= 1 and -guest-timeout > 0 (fix: e.g. -guest-concurrency 4 -guest-timeout 2m)")
	}
	source, login := "-l", f.login
	if login == "" && f.fs != nil {
		source, login = "GOVC_GUEST_LOGIN", os.Getenv("GOVC_GUEST_LOGIN")
	}
	f.override = login != ""
	if login == "" {
		source, login = "guest.login", cfg.Guest.Login.Reveal()
	}
	if login != "" {
		addSecretLogin(login)
		a, err := guest.ParseGuestLogin(login)
		if err != nil {
			return usagef("%s: %s (fix: user:password, as govc's GOVC_GUEST_LOGIN)", source, err)
		}
		f.def = a
	}
	for i, gl := range cfg.Guest.Logins {
		addSecretLogin(gl.Login.Reveal())
		a, err := guest.ParseGuestLogin(gl.Login.Reveal())
		if err != nil {
			return usagef("guest.logins[%d]: %s (fix: user:password)", i, err)
		}
		f.byPat = append(f.byPat, patternLogin{gl.Pattern, a})
	}
	return nil
}

// addSecretLogin registers a user:password login's password (and the whole
// string) as secrets.
func addSecretLogin(login string) {
	addSecret(login)
	for i := 0; i < len(login); i++ {
		if login[i] == ':' {
			addSecret(login[i+1:])
			break
		}
	}
}

// hasLogin reports whether any login is configured.
func (f *guestFlag) hasLogin() bool { return f.def != nil || len(f.byPat) > 0 }

// authFor returns the login for a VM: -l or GOVC_GUEST_LOGIN when given, else
// the first config pattern that matches its name or inventory path, else
// guest.login; nil when there is none.
func (f *guestFlag) authFor(vm reconcile.VM) types.BaseGuestAuthentication {
	if f.override {
		return f.def
	}
	for _, p := range f.byPat {
		if ok, _ := path.Match(p.pattern, vm.Name); ok {
			return p.auth
		}
		if ok, _ := path.Match(p.pattern, vm.Path); ok {
			return p.auth
		}
	}
	if f.def == nil {
		return nil
	}
	return f.def
}

// probe probes vms (grouped by vCenter, through clients keyed by
// VM.VCenter) and returns their identities.
func (f *guestFlag) probe(ctx context.Context, clients map[string]*vim25.Client, vms []reconcile.VM) []reconcile.GuestIdentity {
	byVC := map[string][]reconcile.VM{}
	for _, vm := range vms {
		byVC[vm.VCenter] = append(byVC[vm.VCenter], vm)
	}
	var out []reconcile.GuestIdentity
	for _, vc := range slices.Sorted(maps.Keys(byVC)) {
		if c := clients[vc]; c != nil {
			out = append(out, guest.ProbeAll(ctx, c, byVC[vc], f.authFor, f.concurrency, f.timeout)...)
		}
	}
	return out
}

// verifier probes the VMs worth probing (audit -verify, remediate).
type verifier struct {
	clients map[string]*vim25.Client // by VM.VCenter
	guest   *guestFlag
}

// probe probes the candidates of a first reconcile and returns their identities.
func (v *verifier) probe(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result) []reconcile.GuestIdentity {
	return v.guest.probe(ctx, v.clients, reconcile.ProbeCandidates(snap, res))
}

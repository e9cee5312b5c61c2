package guest

import (
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Logins are the guest credentials of a run, resolved once from the
// configuration: guest.login (or -l / GOVC_GUEST_LOGIN, which then overrides
// the patterns) and guest.logins, first matching pattern first.
type Logins struct {
	def      *types.NamePasswordAuthentication
	override bool
	byPat    []patternLogin
	secrets  []string
}

type patternLogin struct {
	pattern string
	auth    *types.NamePasswordAuthentication
}

// NewLogins parses the logins of g. source names where guest.login came from
// ("-l", "GOVC_GUEST_LOGIN", "guest.login") for the error message.
func NewLogins(g config.Guest, source string) (*Logins, error) {
	l := &Logins{override: g.LoginOverrides}
	if s := g.Login.Reveal(); s != "" {
		l.addSecret(s)
		a, err := ParseGuestLogin(s)
		if err != nil {
			return nil, &config.Error{Key: source, Msg: fmt.Sprintf("%s (fix: user:password, as govc's GOVC_GUEST_LOGIN)", err)}
		}
		l.def = a
	}
	for i, gl := range g.Logins {
		l.addSecret(gl.Login.Reveal())
		a, err := ParseGuestLogin(gl.Login.Reveal())
		if err != nil {
			return nil, &config.Error{Key: fmt.Sprintf("guest.logins[%d]", i), Msg: fmt.Sprintf("%s (fix: user:password)", err)}
		}
		l.byPat = append(l.byPat, patternLogin{gl.Pattern, a})
	}
	return l, nil
}

func (l *Logins) addSecret(login string) {
	if login == "" {
		return
	}
	l.secrets = append(l.secrets, login)
	if _, pw, ok := strings.Cut(login, ":"); ok && pw != "" {
		l.secrets = append(l.secrets, pw)
	}
}

// Secrets returns every login and password, for redaction.
func (l *Logins) Secrets() []string {
	if l == nil {
		return nil
	}
	return l.secrets
}

// Any reports whether any login is configured.
func (l *Logins) Any() bool { return l != nil && (l.def != nil || len(l.byPat) > 0) }

// For returns the login of a VM: the command line's when given, else the
// first pattern matching its name or inventory path, else guest.login; nil
// when there is none.
func (l *Logins) For(vm reconcile.VM) types.BaseGuestAuthentication {
	if l == nil {
		return nil
	}
	if l.override && l.def != nil {
		return l.def
	}
	for _, p := range l.byPat {
		if ok, _ := path.Match(p.pattern, vm.Name); ok {
			return p.auth
		}
		if ok, _ := path.Match(p.pattern, vm.Path); ok {
			return p.auth
		}
	}
	if l.def == nil {
		return nil
	}
	return l.def
}

package remediate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A saved plan is a JSON file anyone with write access can edit, and
// `remediate -apply FILE` executes its entries. Two checks stand between
// the file and the VMs:
//
//   - Verify: the plan carries an HMAC-SHA256 (Seal) of everything in it
//     with a key only this host has (PlanKey, beside the store). Any edit —
//     caps raised, "blocked" deleted, an entry added or retargeted — breaks
//     it.
//   - Recheck: the decision is made again at apply time, from the plan's own
//     settings with today's caps, exclusions and markers, against what is
//     collected now, and the plan must be bound to the same vCenters
//     (instance UUID) and swarms (cluster ID). Whatever would not be
//     planned now is refused.

// ErrPlanRefused is what Verify and Recheck errors match (errors.Is).
var ErrPlanRefused = errors.New("plan refused")

// RefusedError says why a saved plan may not be applied: one line, naming
// the plan, what is wrong and the fix. errors.Is(err, ErrPlanRefused).
type RefusedError struct {
	PlanID string
	Why    string
	Fix    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("plan %s refused: %s (fix: %s)", e.PlanID, e.Why, e.Fix)
}

// Is makes errors.Is(err, ErrPlanRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrPlanRefused }

const fixNewPlan = "compute a new plan with -out and apply that"

// planKeyLen is the length of the plan key, in bytes.
const planKeyLen = 32

// PlanKeyFile is where the plan key of the store at storePath lives: beside
// it, STORE.plankey. It is kept out of the store itself: the store holds no
// secrets, and may be copied for support.
func PlanKeyFile(storePath string) string { return storePath + ".plankey" }

// PlanKey returns the local plan key of the store at storePath, creating it
// (32 random bytes, hex, mode 0600, directory 0750 as the store's) when it
// does not exist. A key file others may read or write, or that is not a
// regular file or not a key, is an error naming it and the fix: plans
// sealed with a key others can read prove nothing.
func PlanKey(storePath string) ([]byte, error) {
	if storePath == "" {
		return nil, errors.New("plan key: no store path (fix: -store FILE or store.path)")
	}
	path := PlanKeyFile(storePath)
	k, err := readPlanKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("plan key %s: %w", path, err)
	}
	key := make([]byte, planKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("plan key: %w", err)
	}
	// Written aside, then linked into place: a concurrent first run never
	// reads a half-written key, and the first link wins.
	tmp, err := os.CreateTemp(dir, ".plankey-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readPlanKey(path) // another process made it first
		}
		return nil, fmt.Errorf("plan key %s: %w", path, err)
	}
	return key, nil
}

func readPlanKey(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("plan key %s is not a regular file (fix: remove it; a new key is made, and plans saved before must be computed again)", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("plan key %s is open to other users (mode %04o) (fix: chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan key %s: %w", path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != planKeyLen {
		return nil, fmt.Errorf("plan key %s is not a vmreconcile plan key (fix: remove it; a new key is made, and plans saved before must be computed again)", path)
	}
	return key, nil
}

// sealOf is the HMAC of the plan without its seal: its JSON (every field,
// so settings, blocked, entries, refusals, bindings and fingerprint alike)
// under a domain prefix.
func sealOf(p Plan, key []byte) (string, error) {
	if len(key) == 0 {
		return "", errors.New("plan seal: empty key")
	}
	p.Seal = ""
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("plan seal: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("vmreconcile plan seal 1\n"))
	m.Write(b)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)), nil
}

// Seal sets p.Seal: the HMAC-SHA256, with key (PlanKey), of everything
// else in the plan. Seal a plan last, just before saving it.
func Seal(p *Plan, key []byte) error {
	s, err := sealOf(*p, key)
	if err != nil {
		return err
	}
	p.Seal = s
	return nil
}

// Verify checks that p is exactly the plan that was sealed with key: a
// *RefusedError when it is unsealed or anything in it changed since.
func Verify(p Plan, key []byte) error {
	if p.Seal == "" {
		return &RefusedError{PlanID: p.ID, Why: "it is not sealed (saved by an older vmreconcile, or the seal was removed)", Fix: fixNewPlan}
	}
	want, err := sealOf(p, key)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(p.Seal)) {
		return &RefusedError{PlanID: p.ID, Why: "it does not match its seal: edited or corrupted since it was saved, or saved on another host (another store's plan key)", Fix: fixNewPlan}
	}
	return nil
}

// ApplySettings are the settings to compute the fresh plan with when a
// saved plan is applied: what to do (action, forget-identity, -vm) is the
// plan's; the exclusions are the plan's and today's together; each cap is
// the stricter of the plan's and today's (a cap left zero in now is not
// set today: the plan's holds).
func ApplySettings(saved, now Settings) Settings {
	s := saved
	s.Exclude = slices.Compact(slices.Sorted(slices.Values(slices.Concat(saved.Exclude, now.Exclude))))
	if now.MaxActions > 0 && (s.MaxActions <= 0 || now.MaxActions < s.MaxActions) {
		s.MaxActions = now.MaxActions
	}
	if now.MaxPercent > 0 && (s.MaxPercent <= 0 || now.MaxPercent < s.MaxPercent) {
		s.MaxPercent = now.MaxPercent
	}
	return s
}

// Recheck decides again, at apply time, whether the saved plan may be
// executed: fresh is the plan computed now (collection, markers and tags of
// now) with ApplySettings(saved.Settings, today's settings). It refuses,
// with a *RefusedError, a plan that
//   - was blocked by the caps when it was computed;
//   - has entries on more VMs than its own caps, or today's, allow for the
//     inventory of now (a plan whose caps were raised or whose "blocked"
//     was deleted by hand, when today's caps are set);
//   - the caps block now;
//   - was made on another vCenter (instance UUID) or swarm (cluster ID),
//     or names a vCenter without its instance UUID;
//   - is stale (Stale): an entry the fresh plan would not do, on the same
//     VM of the same vCenter, or a fingerprint that changed.
//
// done reports the entries an earlier apply of this plan finished (DoneIn
// over its journal rows); nil means none. Verify the seal first: Recheck
// cannot tell an edit that is consistent with today's world.
func Recheck(saved, fresh Plan, done func(Entry) bool) error {
	refuse := func(fix, format string, args ...any) error {
		return &RefusedError{PlanID: saved.ID, Why: fmt.Sprintf(format, args...), Fix: fix}
	}
	if saved.Version != PlanVersion {
		return refuse(fixNewPlan, "it is a plan of version %d, this vmreconcile applies version %d", saved.Version, PlanVersion)
	}
	if saved.Blocked != "" {
		return refuse("check the findings; compute a new plan with higher caps only if they are all right",
			"the caps refused it when it was computed (%s)", saved.Blocked)
	}
	// The caps count VMs, as Compute does: an MKE copy's disable-docker and
	// disable-kubelet are one VM.
	n := len(saved.Entries)
	for _, caps := range []Settings{saved.Settings, fresh.Settings} {
		if b := capsBlock(entryVMs(saved.Entries), fresh.InventoryVMs, caps); b != "" {
			return refuse("check the findings; compute a new plan with higher caps only if they are all right",
				"its %d entries exceed the caps for today's inventory: %s", n, b)
		}
	}
	if fresh.Blocked != "" {
		return refuse("check the findings; compute a new plan with higher caps only if they are all right",
			"the caps refuse it now: %s", fresh.Blocked)
	}
	if why := bindingChanged(saved, fresh); why != "" {
		return refuse("compute a new plan against the vCenters and swarms it is to be applied to", "%s", why)
	}
	if why := Stale(saved, fresh, done); why != "" {
		return refuse(fixNewPlan, "it is stale: %s", why)
	}
	return nil
}

// bindingChanged says how the vCenters or swarms of now differ from those
// the plan was made on, or "" when they do not.
func bindingChanged(saved, fresh Plan) string {
	vcs := map[string]bool{}
	for vc := range saved.VCenterUUIDs {
		vcs[vc] = true
	}
	for _, e := range slices.Concat(saved.Entries, saved.AlreadyDone) {
		vcs[e.VM.VCenter] = true
	}
	for _, vc := range slices.Sorted(maps.Keys(vcs)) {
		was, now := saved.VCenterUUIDs[vc], fresh.VCenterUUIDs[vc]
		switch {
		case was == "":
			return fmt.Sprintf("it does not name the instance UUID of vCenter %s, so it cannot be told whether that is the vCenter it was made on", vcName(vc))
		case now == "":
			return fmt.Sprintf("it was made on vCenter %s with instance UUID %s, whose instance UUID is unknown now", vcName(vc), was)
		case was != now:
			return fmt.Sprintf("it was made on vCenter %s with instance UUID %s, but %s now answers with instance UUID %s: another vCenter", vcName(vc), was, vcName(vc), now)
		}
	}
	for _, id := range saved.ClusterIDs {
		if !slices.Contains(fresh.ClusterIDs, id) {
			now := strings.Join(fresh.ClusterIDs, ", ")
			if now == "" {
				now = "none"
			}
			return fmt.Sprintf("it was made with swarm cluster %s, which is not among the swarms observed now (%s)", id, now)
		}
	}
	return ""
}

func vcName(vc string) string {
	if vc == "" {
		return "(unnamed)"
	}
	return vc
}

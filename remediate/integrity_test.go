package remediate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// bound is world(n) as collection gives it: the vCenter's instance UUID
// and the swarm's cluster ID filled in.
func bound(n int) reconcile.Snapshot {
	s := world(n)
	s.VCenters = []string{"vc1"}
	s.VCenterUUIDs = map[string]string{"vc1": "uuid-vc1"}
	s.Swarms = []reconcile.Swarm{{Endpoint: "tcp://mgr:2376", ClusterID: "c1"}}
	return s
}

// twoImpostors is bound(20) with a second clone of wk1: two VMs qualify,
// so the default cap (1 action) blocks the plan.
func twoImpostors() reconcile.Snapshot {
	s := bound(20)
	c2 := vm("wk1-clone2", t0.Add(-time.Minute))
	s.VMs = append(s.VMs, c2)
	s.Guests = append(s.Guests, probe(c2, "node1"))
	return s
}

// saveLoad writes p as `remediate -out` does and reads it back, after
// edit changes the JSON (nil: unchanged), as someone with the file might.
func saveLoad(t *testing.T, p Plan, edit func(m map[string]any)) Plan {
	t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(file)
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if err := q.Settings.Normalize(); err != nil { // as the command reads a plan
		t.Fatal(err)
	}
	return q
}

func sealed(t *testing.T, p Plan, key []byte) Plan {
	t.Helper()
	if err := Seal(&p, key); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantRefused(t *testing.T, what string, err error, contains ...string) {
	t.Helper()
	var re *RefusedError
	if !errors.Is(err, ErrPlanRefused) || !errors.As(err, &re) {
		t.Errorf("%s: %v, want a refusal", what, err)
		return
	}
	msg := err.Error()
	for _, c := range contains {
		if !strings.Contains(msg, c) {
			t.Errorf("%s: %q lacks %q", what, msg, c)
		}
	}
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "(fix: ") {
		t.Errorf("%s: not one line with a fix: %q", what, msg)
	}
}

var testKey = bytes.Repeat([]byte{7}, 32)

func TestPlanKeyFile(t *testing.T) {
	store := filepath.Join(t.TempDir(), "state", "vmreconcile.db")
	k1, err := PlanKey(store)
	if err != nil || len(k1) != 32 {
		t.Fatalf("PlanKey: %x %v", k1, err)
	}
	fi, err := os.Stat(store + ".plankey")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if k2, err := PlanKey(store); err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second PlanKey: %x %v, want the same key", k2, err)
	}
	os.Chmod(store+".plankey", 0o644)
	if _, err := PlanKey(store); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	os.Chmod(store+".plankey", 0o600)
	os.WriteFile(store+".plankey", []byte("not a key\n"), 0o600)
	if _, err := PlanKey(store); err == nil || !strings.Contains(err.Error(), "not a vmreconcile plan key") {
		t.Errorf("malformed key: %v", err)
	}
	// A plan sealed with another host's key does not verify here.
	other, _ := PlanKey(filepath.Join(t.TempDir(), "other.db"))
	p, _ := plan(t, bound(10), Options{})
	if err := Verify(sealed(t, p, other), k1); !errors.Is(err, ErrPlanRefused) {
		t.Errorf("plan of another key: %v", err)
	}
}

func TestSealVerify(t *testing.T) {
	p, _ := plan(t, bound(10), Options{})
	if err := Verify(p, testKey); err == nil {
		t.Error("unsealed plan verified")
	} else {
		wantRefused(t, "unsealed", err, "not sealed")
	}
	s := sealed(t, p, testKey)
	q := saveLoad(t, s, nil)
	if err := Verify(q, testKey); err != nil {
		t.Fatalf("a saved and read plan does not verify: %v", err)
	}
	fresh, _ := plan(t, bound(10), Options{})
	if err := Recheck(q, fresh, nil); err != nil {
		t.Fatalf("an untouched plan is refused: %v", err)
	}
}

// issue 9, item 5: a plan the caps refused, edited (max_actions raised,
// "blocked" deleted) and applied. The fingerprint covered neither.
func TestSealedPlanEditedCapsRefused(t *testing.T) {
	saved, _ := plan(t, twoImpostors(), Options{})
	if !strings.Contains(saved.Blocked, "-max-actions allows 1") || len(saved.Entries) != 2 {
		t.Fatalf("setup: %+v", saved)
	}
	saved = sealed(t, saved, testKey)
	edited := saveLoad(t, saved, func(m map[string]any) {
		m["settings"].(map[string]any)["max_actions"] = 50
		delete(m, "blocked")
	})
	if edited.Blocked != "" || edited.Settings.MaxActions != 50 {
		t.Fatalf("edit: %+v", edited)
	}
	wantRefused(t, "edited caps, seal", Verify(edited, testKey), "does not match its seal")

	// The decision made again at apply time, from the plan's settings with
	// today's caps (the config's policy.max_actions: 1): refused as well.
	now := ApplySettings(edited.Settings, Settings{MaxActions: 1, MaxPercent: 10})
	if now.MaxActions != 1 {
		t.Fatalf("ApplySettings: %+v", now)
	}
	fresh, _ := plan(t, twoImpostors(), Options{Settings: now})
	wantRefused(t, "edited caps, recheck", Recheck(edited, fresh, nil), "caps")

	// The plan as saved, blocked: refused, never applied.
	fresh, _ = plan(t, twoImpostors(), Options{Settings: saved.Settings})
	wantRefused(t, "blocked plan", Recheck(saved, fresh, nil), "the caps refused it when it was computed")
}

// "blocked" deleted alone, caps left as they were.
func TestSealedPlanDeletedBlockedRefused(t *testing.T) {
	saved := sealed(t, must(plan(t, twoImpostors(), Options{})), testKey)
	edited := saveLoad(t, saved, func(m map[string]any) { delete(m, "blocked") })
	wantRefused(t, "deleted blocked, seal", Verify(edited, testKey), "does not match its seal")
	// Today's settings are the plan's own: its 2 entries exceed its own cap.
	fresh, _ := plan(t, twoImpostors(), Options{Settings: ApplySettings(edited.Settings, Settings{})})
	wantRefused(t, "deleted blocked, recheck", Recheck(edited, fresh, nil), "its 2 entries exceed the caps", "-max-actions allows 1")
}

// An entry retargeted or added by hand.
func TestSealedPlanTamperedEntryRefused(t *testing.T) {
	saved := sealed(t, must(plan(t, bound(10), Options{})), testKey)
	fresh, _ := plan(t, bound(10), Options{})
	for name, edit := range map[string]func(m map[string]any){
		"retargeted to the original": func(m map[string]any) {
			vm := m["entries"].([]any)[0].(map[string]any)["vm"].(map[string]any)
			vm["name"], vm["path"], vm["ref"] = "wk1", "/DC0/vm/wk1", "vm-wk1"
		},
		"other vCenter": func(m map[string]any) {
			m["entries"].([]any)[0].(map[string]any)["vm"].(map[string]any)["vcenter"] = "vc2"
		},
		"action changed":   func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["action"] = ActionPowerOff },
		"inventory raised": func(m map[string]any) { m["inventory_vms"] = 1000 },
		"uuid rebound":     func(m map[string]any) { m["vcenter_uuids"] = map[string]any{"vc1": "uuid-other"} },
	} {
		edited := saveLoad(t, saved, edit)
		wantRefused(t, name, Verify(edited, testKey), "does not match its seal")
		if name == "retargeted to the original" || name == "other vCenter" || name == "action changed" {
			if err := Recheck(edited, fresh, nil); !errors.Is(err, ErrPlanRefused) {
				t.Errorf("%s: recheck %v", name, err)
			}
		}
	}
}

// issue 9, item 6 (unit level; see TestPlanReplayedOnAnotherVCenter for
// two vcsim instances): the plan is bound to the vCenters' instance UUIDs
// and the swarms' cluster IDs.
func TestRecheckBindings(t *testing.T) {
	saved, _ := plan(t, bound(10), Options{})
	other := bound(10)
	other.VCenterUUIDs["vc1"] = "uuid-elsewhere"
	fresh, _ := plan(t, other, Options{})
	wantRefused(t, "other vCenter", Recheck(saved, fresh, nil), "vCenter vc1 with instance UUID uuid-vc1", "instance UUID uuid-elsewhere")

	unknown := bound(10)
	unknown.VCenterUUIDs = nil
	fresh, _ = plan(t, unknown, Options{})
	wantRefused(t, "UUID unknown now", Recheck(saved, fresh, nil), "unknown now")
	unbound, _ := plan(t, unknown, Options{})
	fresh, _ = plan(t, bound(10), Options{})
	wantRefused(t, "plan without UUID", Recheck(unbound, fresh, nil), "does not name the instance UUID of vCenter vc1")

	swarm := bound(10)
	swarm.Swarms[0].ClusterID = "c2"
	fresh, _ = plan(t, swarm, Options{})
	wantRefused(t, "other swarm", Recheck(saved, fresh, nil), "swarm cluster c1", "(c2)")
}

func TestApplySettings(t *testing.T) {
	saved := Settings{Action: ActionPowerOff, Select: []string{"a"}, Exclude: []string{"x"}, MaxActions: 5, MaxPercent: 50}
	got := ApplySettings(saved, Settings{Action: ActionDisableDocker, Exclude: []string{"y", "x"}, MaxActions: 2})
	if got.Action != ActionPowerOff || strings.Join(got.Select, ",") != "a" || strings.Join(got.Exclude, ",") != "x,y" || got.MaxActions != 2 || got.MaxPercent != 50 {
		t.Errorf("ApplySettings: %+v", got)
	}
	if got := ApplySettings(saved, Settings{MaxActions: 9, MaxPercent: 90}); got.MaxActions != 5 || got.MaxPercent != 50 {
		t.Errorf("looser caps today loosened the plan's: %+v", got)
	}
}

func must(p Plan, _ reconcile.Result) Plan { return p }

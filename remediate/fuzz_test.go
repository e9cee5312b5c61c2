package remediate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// The seeds of FuzzParseGuestReport are the real disable-docker script's
// output for several guest states (testdata/script, made by
// scripts/gen-guest-fixtures).

func scriptFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob("testdata/script/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no script fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestScriptFixtures pins what the real script output of each guest state
// parses to and says.
func TestScriptFixtures(t *testing.T) {
	const backup = "/var/lib/docker/vmreconcile-backup-20260301T120000Z"
	want := map[string]struct {
		changed, complete bool
		summary           string
	}{
		"done.txt":         {true, true, "systemctl disable --now docker.service docker.socket"},
		"already.txt":      {false, true, "Docker already disabled and inactive (nothing to do)"},
		"forget.txt":       {true, true, "systemctl disable --now docker.service docker.socket; swarm state copied into the backup, then docker swarm leave --force (local); moved swarm.after-leave, engine-id to " + backup},
		"forget-again.txt": {false, true, "Docker already disabled and inactive (nothing to do); swarm leave skipped (no docker CLI); identity files already moved (" + backup + ")"},
		"not-root.txt":     {false, false, "error: guest user is not root (uid 1000): stopping Docker needs root"},
	}
	fx := scriptFixtures(t)
	if len(fx) != len(want) {
		t.Errorf("%d fixtures, %d expectations", len(fx), len(want))
	}
	for name, out := range fx {
		r, err := ParseGuestReport(out)
		w := want[name]
		if err != nil || r.Changed() != w.changed || r.Complete != w.complete || r.Summary() != w.summary || r.DockerRoot != "/var/lib/docker" && name != "not-root.txt" {
			t.Errorf("%s: %v changed=%v complete=%v %q\n%+v", name, err, r.Changed(), r.Complete, r.Summary(), r)
		}
	}
}

// TestParseGuestReportLongLine: docker_root comes from the guest's
// daemon.json (up to 64 KiB). A line longer than bufio.Scanner's default
// 64 KiB used to end the parse silently: what the script did after it
// (disable=done, end=ok) was lost, and a success read as a failure that
// changed nothing.
func TestParseGuestReportLongLine(t *testing.T) {
	root := "/" + strings.Repeat("d", 70<<10)
	out := "remediate=vmreconcile/1\nuid=0\ndocker_root=" + root + "\nbefore.docker.service=enabled/active\n" +
		"disable=done docker.service docker.socket\nend=ok\n"
	r, err := ParseGuestReport([]byte(out))
	if err != nil || r.DockerRoot != root || !r.Complete || !r.Changed() {
		t.Errorf("err %v, complete %v, changed %v, root %d bytes", err, r.Complete, r.Changed(), len(r.DockerRoot))
	}
}

// renderGuestReport writes r back as script output; parsing it must give r.
func renderGuestReport(r GuestReport) string {
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	line("remediate", "vmreconcile/1")
	line("docker_root", r.DockerRoot)
	for _, x := range r.Before {
		b.WriteString("before." + x + "\n")
	}
	if r.Already {
		line("disable", "already")
	}
	if r.Disabled != nil {
		line("disable", "done "+strings.Join(r.Disabled, " "))
	}
	line("swarm_leave", r.SwarmLeave)
	for _, x := range r.Copied {
		line("copied", x)
	}
	for _, x := range r.Moved {
		line("moved", x)
	}
	line("identity", r.Identity)
	line("backup", r.Backup)
	line("error", r.Error)
	if r.Complete {
		line("end", "ok")
	}
	return b.String()
}

func FuzzParseGuestReport(f *testing.F) {
	for _, b := range scriptFixtures(f) {
		f.Add(b)
	}
	f.Add([]byte("sh: syntax error\n"))
	f.Add([]byte("remediate=vmreconcile/1\r\ndisable=done\r\nend=ok\r\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseGuestReport(out)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if s := r.Summary(); strings.Contains(s, "\n") {
			t.Fatalf("summary is not one line: %q", s)
		}
		if r.Changed() != (len(r.Disabled) > 0 || len(r.Moved) > 0 || len(r.Copied) > 0 || r.SwarmLeave == "done") {
			t.Fatalf("Changed %v for %+v", r.Changed(), r)
		}
		sawEnd := false
		for _, l := range strings.Split(string(out), "\n") {
			// bufio.ScanLines drops one carriage return before a newline
			// or at the end.
			sawEnd = sawEnd || strings.TrimSuffix(l, "\r") == "end=ok"
		}
		if r.Complete && !sawEnd {
			t.Fatalf("complete without an end=ok line: %q", out)
		}
		again, err := ParseGuestReport([]byte(renderGuestReport(r)))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip:\n got %+v %v\nwant %+v", again, err, r)
		}
	})
}

// planSeeds are plans as `remediate -out` writes them, from the scenarios of
// the plan tests, and the same plans edited.
func planSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	add := func(p Plan) {
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, append(b, '\n'))
	}
	for _, o := range []Options{{}, {Settings: Settings{Action: ActionPowerOff, MaxActions: 5, MaxPercent: 50}},
		{Settings: Settings{ForgetIdentity: true, Exclude: []string{"/DC0/vm/other-*"}}}} {
		snap := world(10)
		res := reconcileOf(snap)
		o.Now = t0
		p, err := Compute(snap, res, o)
		if err != nil {
			tb.Fatal(err)
		}
		add(p)
		p.Settings.MaxActions, p.Blocked = 50, ""
		add(p)
	}
	snap := world(1) // 3 VMs: one action is 33% > 10%: refused by the caps
	p, err := Compute(snap, reconcileOf(snap), Options{Now: t0})
	if err != nil {
		tb.Fatal(err)
	}
	add(p)
	return out
}

// FuzzDecodePlan: a plan file decodes into normalized settings or one line
// of error; a decoded plan survives writing and reading again, and is never
// stale against itself unless its own fingerprint check fails.
func FuzzDecodePlan(f *testing.F) {
	for _, b := range planSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"id":"p","fingerprint":{"digest":"x"},"settings":{"max_percent":"NaN"}}`))
	f.Add([]byte(`{"version":1,"id":"p","fingerprint":{"digest":"x"},"settings":{"action":"power-off","forget_identity":true}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePlan(b)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		s := p.Settings
		if err := s.Normalize(); err != nil || !reflect.DeepEqual(s, p.Settings) {
			t.Fatalf("settings not normalized: %+v → %+v, %v", p.Settings, s, err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("a decoded plan does not encode: %v", err)
		}
		back, err := DecodePlan(again)
		if err != nil || !reflect.DeepEqual(normalizeTimes(back), normalizeTimes(p)) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, back, p)
		}
		why := Stale(p, p, nil)
		if why != "" && !strings.HasPrefix(why, "the plan file's ") {
			t.Fatalf("stale against itself: %q", why)
		}
	})
}

// normalizeTimes drops the monotonic and location detail JSON does not keep.
func normalizeTimes(p Plan) Plan {
	p.Created = p.Created.UTC()
	return p
}

func reconcileOf(snap reconcile.Snapshot) reconcile.Result {
	return reconcile.Reconcile(snap, reconcile.History{})
}

package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	bi := func(v string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{Main: debug.Module{Path: "github.com/vmreconcile/vmreconcile", Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	rev := "a0c7a6606e37e28ae59d618a7201a2eaaa210c96"
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{bi("v1.2.3"), "v1.2.3"}, // go install ...@v1.2.3
		{bi("v0.0.0-20260101000000-a0c7a6606e37+dirty", "vcs.revision", rev), "v0.0.0-20260101000000-a0c7a6606e37+dirty"}, // go build in a clone
		{bi("(devel)", "vcs.revision", rev), "devel-a0c7a6606e37"},
		{bi("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "devel-a0c7a6606e37-dirty"},
		{bi("(devel)"), "(devel)"},
		{nil, "(unknown)"},
	} {
		if got := versionOf(tc.bi); got != tc.want {
			t.Errorf("versionOf(%+v) = %q, want %q", tc.bi, got, tc.want)
		}
	}
	buildVersion = "v9.9.9"
	defer func() { buildVersion = "" }()
	if got := versionOf(bi("v1.2.3")); got != "v9.9.9" {
		t.Errorf("-X main.buildVersion does not override: %q", got)
	}
}

// TestVersionAndHelpAsTyped: --version and version agree and never say
// "dev"; -X main.buildVersion overrides; help CMD is CMD -h, for a command
// and a subcommand; config alone lists its subcommands.
func TestVersionAndHelpAsTyped(t *testing.T) {
	a, b := runBin(t, nil, "--version"), runBin(t, nil, "version")
	if a.code != 0 || a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "vmreconcile ") || strings.HasPrefix(a.stdout, "vmreconcile dev\n") {
		t.Errorf("--version %q (exit %d), version %q", a.stdout, a.code, b.stdout)
	}
	for _, want := range []string{"go1.", "github.com/vmware/govmomi v0.56.0", "github.com/docker/docker v28."} {
		if !strings.Contains(a.stdout, want) {
			t.Errorf("version lacks %q:\n%s", want, a.stdout)
		}
	}
	bin := filepath.Join(t.TempDir(), "vmreconcile")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.buildVersion=v7.7.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, _ := exec.Command(bin, "--version").Output(); !strings.HasPrefix(string(out), "vmreconcile v7.7.7-test\n") {
		t.Errorf("-X override: %q", out)
	}

	env := []string{"HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()} // the same defaults in both
	for _, args := range [][]string{{"audit"}, {"config", "validate"}, {"daemon"}} {
		h := runBin(t, env, append([]string{"help"}, args...)...)
		d := runBin(t, env, append(append([]string{}, args...), "-h")...)
		if h.code != 0 || h.stderr != d.stderr || !strings.Contains(h.stderr, "Usage: vmreconcile "+strings.Join(args, " ")) || !strings.Contains(h.stderr, "Options:") {
			t.Errorf("help %v (exit %d):\n%s\nwant what -h says:\n%s", args, h.code, h.stderr, d.stderr)
		}
	}
	if r := runBin(t, nil, "help", "nosuch"); r.code != ExitUsage || !strings.Contains(r.stderr, `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d: %s", r.code, r.stderr)
	}
	r := runBin(t, nil, "config")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "validate") || !strings.Contains(r.stderr, "defaults") {
		t.Errorf("config alone: exit %d: %s", r.code, r.stderr)
	}
	if r := runBin(t, nil, "config", "frobnicate"); r.code != ExitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate" (fix: one of defaults, validate)`) {
		t.Errorf("config frobnicate: exit %d: %s", r.code, r.stderr)
	}
	if r := runBin(t, nil, "help"); r.code != 0 || !strings.Contains(r.stderr, "config validate") || !strings.Contains(r.stderr, "config defaults") {
		t.Errorf("help lists the subcommands: %s", r.stderr)
	}
}

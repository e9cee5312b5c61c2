package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestSessionNotPersisted: -persist-session is off by default (README), so
// no vCenter session cookie is left in ~/.govmomi, and a later run with a
// wrong password cannot ride on a cached session.
func TestSessionNotPersisted(t *testing.T) {
	u, _ := startVCSim(t)
	mgr := dockersim.New(dockersim.Options{})
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	home := t.TempDir()
	env := []string{"HOME=" + home}
	if r := runBin(t, env, "audit", "-u", u.String(), "-k", "-H", mgr.Host(), "-fail-on", "never"); r.code != 0 {
		t.Fatalf("audit: exit %d: %s", r.code, r.stderr)
	}
	filepath.Walk(filepath.Join(home, ".govmomi"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("session state left behind: %s", p)
		}
		return nil
	})
	bad := *u
	bad.User = url.UserPassword("administrator@vsphere.local", "WrongPassw0rd!")
	r := runBin(t, env, "audit", "-u", bad.String(), "-k", "-H", mgr.Host())
	if r.code != ExitUsage || !strings.Contains(r.stderr, "login failed") {
		t.Errorf("wrong password after a good run: exit %d, want 2 login failed; stderr: %s", r.code, r.stderr)
	}
}

// TestConfigDuplicateDatacenter: a datacenter listed twice (or as "DC0" and
// "/DC0") is inventoried once; otherwise every VM was its own duplicate.
func TestConfigDuplicateDatacenter(t *testing.T) {
	u, c := startVCSim(t)
	if _, err := vcsim.CreateVM(context.Background(), c, vcsim.VM{Name: "wk-01", Hostname: "wk-01", IP: "10.0.0.11", PowerOn: true, ToolsRunning: true}); err != nil {
		t.Fatal(err)
	}
	mgr := dockersim.New(dockersim.Options{})
	if _, err := mgr.AddNode(dockersim.NodeSpec{Hostname: "wk-01", Addr: "10.0.0.11"}); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	host := *u
	host.User = nil
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	// CRLF, as written on Windows: the line ending is not part of the password.
	if err := os.WriteFile(pw, []byte("Sim-Pass-1\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	body := fmt.Sprintf("vcenters:\n  - url: %s\n    username: administrator@vsphere.local\n    password_file: %s\n    insecure: true\n    datacenters: [DC0, /DC0]\n", host.String(), pw)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, nil, "audit", "-json", "-config", cfg, "-H", mgr.Host(), "-fail-on", "never")
	if r.code != 0 {
		t.Fatalf("audit: exit %d: %s", r.code, r.stderr)
	}
	res := decode(t, r)
	if res.Summary.VMs != 1 {
		t.Errorf("summary.vms = %d, want 1 (the datacenter was inventoried twice?)", res.Summary.VMs)
	}
	for _, k := range []string{reconcile.KindDuplicateBIOSUUID, reconcile.KindDuplicateMAC} {
		if fs := findingsOf(res, k); len(fs) != 0 {
			t.Errorf("%s findings: %+v", k, fs)
		}
	}
}

// TestPrecloneSearchFlag: -vm.ipath alone selects the VM (README:
// "preclone -json -vm.ipath /DC0/vm/tmpl-ubuntu"); it was refused as "no VM".
func TestPrecloneSearchFlag(t *testing.T) {
	u, c := startVCSim(t)
	if _, err := vcsim.CreateVM(context.Background(), c, vcsim.VM{Name: "golden-01", PowerOn: false}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "state.db")
	r := runBin(t, nil, "preclone", "-json", "-u", u.String(), "-k", "-store", store, "-vm.ipath", "/DC0/vm/golden-01")
	if r.code != ExitUnverified {
		t.Fatalf("exit %d, want 4 (powered off, never probed); stderr: %s", r.code, r.stderr)
	}
	o := decodePreclone(t, r)
	if len(o.VMs) != 1 || o.VMs[0].Name != "golden-01" {
		t.Errorf("vms = %+v", o.VMs)
	}
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDaemonUnderSystemd runs the daemon as the unit does: Type=notify with
// a watchdog (READY=1, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on
// SIGTERM, over a unixgram NOTIFY_SOCKET) and, as root, under the unit's
// /proc restrictions (ProtectProc=invisible, ProcSubset=pid: a procfs
// mounted hidepid=invisible,subset=pid), where /metrics must still serve.
func TestDaemonUnderSystemd(t *testing.T) {
	sim := newSim(t, "clustersd")
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	addr := freeAddr(t)
	cfg := writeCfg(t, dir, "c.yaml", fmt.Sprintf("swarms:\n  - hosts: [%q]\nlisten: %s\nstore:\n  path: %s\n", sim.Host(), addr, filepath.Join(dir, "state.db")))

	cmd := exec.Command(binPath, "daemon", "-config", cfg)
	restricted := false
	if _, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		// As systemd does for ProtectProc=invisible and ProcSubset=pid.
		cmd = exec.Command("unshare", "-m", "sh", "-c", `mount -t proc -o hidepid=invisible,subset=pid proc /proc && exec "$0" daemon -config "$1"`, binPath, cfg)
		restricted = true
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	next := func() string {
		select {
		case m := <-msgs:
			return m
		case err := <-exited:
			t.Fatalf("the daemon exited: %v\n%s", err, stderr.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("no notification within 30s\n%s", stderr.String())
		}
		return ""
	}
	if m := next(); m != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	// Ready means listening: /metrics answers at once.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "vmreconcile_") || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics (restricted /proc: %v): %d\n%s", restricted, resp.StatusCode, body)
	}
	for range 2 {
		if m := next(); m != "WATCHDOG=1" {
			t.Errorf("%q, want WATCHDOG=1", m)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for m := next(); m != "STOPPING=1"; m = next() {
		if m != "WATCHDOG=1" {
			t.Errorf("%q before STOPPING=1", m)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop within 30s of SIGTERM")
	}
	if !restricted {
		t.Log("not root or no unshare: the /proc restrictions were not applied")
	}
}

// TestSystemdUnit: the shipped unit passes systemd-analyze verify with no
// warning (an unknown or misspelt directive warns), is Type=notify with a
// watchdog and the /proc restrictions, and starts without a webhook secret
// (only the vCenter password is a required credential).
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../contrib/systemd/vmreconcile.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	var directives []string
	for _, l := range strings.Split(unit, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
			directives = append(directives, l)
		}
	}
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "WatchdogSec=60s", "ProtectProc=invisible", "ProcSubset=pid",
		"LoadCredential=vcenter-password:/etc/vmreconcile/credentials/vcenter-password", "RestartPreventExitStatus=2"} {
		if !slices.Contains(directives, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	for _, d := range directives {
		if strings.HasPrefix(d, "LoadCredential=") && !strings.Contains(d, "vcenter-password") {
			t.Errorf("%s: a required credential beyond the vCenter password stops a unit without it", d)
		}
	}
	if !strings.Contains(unit, "vmreconcile config validate -config /etc/vmreconcile/config.yaml") || strings.Contains(unit, "-once") {
		t.Error("the unit's check is not config validate")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	f := filepath.Join(t.TempDir(), "vmreconcile.service")
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(unit, "/usr/local/bin/vmreconcile", binPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", f).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
